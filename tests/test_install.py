"""scripts/install into a temporary root from a wheelhouse, with no network; re-run, uninstall, purge."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import pytest

from tests.conftest import REPO
from tests.test_mosquitto_conf import start_edge_broker

# Building the wheelhouse and a venv with onnxruntime and OpenCV takes about a minute.
pytestmark = pytest.mark.timeout(600)

INSTALL = REPO / "scripts" / "install"
SEED = {  # a minimal user database for the temporary root, as on a Debian box
    "passwd": "root:x:0:0:root:/root:/bin/bash\nmosquitto:x:105:105::/var/lib/mosquitto:/usr/sbin/nologin\n",
    "group": "root:x:0:\ndialout:x:20:\nvideo:x:44:\nmosquitto:x:105:\n",
    "shadow": "root:*:19000:0:99999:7:::\nmosquitto:*:19000:0:99999:7:::\n",
    "gshadow": "root:*::\ndialout:*::\nvideo:*::\nmosquitto:!::\n",
}
ROOT = os.geteuid() == 0


def offline(command: list[str]) -> list[str]:
    """Run command without any network: its own empty network namespace when we are root."""
    return ["unshare", "--net", *command] if ROOT else command


def offline_env() -> dict[str, str]:
    """Also point every index and proxy at a closed port, so a network attempt fails loudly."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    dead = "http://127.0.0.1:9"
    env.update(PIP_INDEX_URL=f"{dead}/simple", PIP_EXTRA_INDEX_URL=f"{dead}/simple", http_proxy=dead,
               https_proxy=dead, HTTP_PROXY=dead, HTTPS_PROXY=dead)
    return env


def install(root: Path, *args: str, wheelhouse: Path | None = None) -> subprocess.CompletedProcess[str]:
    extra = ["--wheelhouse", str(wheelhouse)] if wheelhouse else []
    return subprocess.run(offline(["bash", str(INSTALL), "--root", str(root), *extra, *args]),
                          capture_output=True, text=True, env=offline_env(), timeout=400)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def ids(root: Path, database: str, name: str) -> list[str]:
    """The fields of name's line in root's /etc/passwd or /etc/group ([] when absent)."""
    for line in (root / "etc" / database).read_text().splitlines():
        if line.split(":")[0] == name:
            return line.split(":")
    return []


@dataclass
class Installed:
    root: Path
    wheelhouse: Path
    first: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("wheelhouse")
    subprocess.run([str(REPO / "scripts" / "build-wheelhouse"), str(directory)], check=True, timeout=400,
                   capture_output=True)
    return directory


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> Iterator[Installed]:
    root = tmp_path_factory.mktemp("root") / "gateway box"  # a space: every path stays quoted
    root.mkdir()
    (root / "etc").mkdir()
    for name, text in SEED.items():
        (root / "etc" / name).write_text(text)
    first = install(root, "--no-enable", wheelhouse=wheelhouse)
    assert first.returncode == 0, first.stdout + first.stderr
    yield Installed(root, wheelhouse, first)


def test_the_sandbox_really_has_no_network() -> None:
    # The proof that the install below was offline is only as good as this.
    probes = ["import urllib.request; urllib.request.urlopen('https://pypi.org/simple/', timeout=5)"]
    if ROOT:  # in the empty network namespace not even a direct connection gets out
        probes.append("import socket; socket.create_connection(('151.101.0.223', 443), timeout=5)")
    for probe in probes:
        run = subprocess.run(offline([shutil.which("python3") or "python3", "-c", probe]),
                             capture_output=True, text=True, env=offline_env(), timeout=60)
        assert run.returncode != 0 and "Error" in run.stderr, probe


def test_the_wheelhouse_holds_the_project_and_its_dependencies_for_this_python(wheelhouse: Path) -> None:
    names = {p.name.split("-")[0].lower() for p in wheelhouse.glob("*.whl")}
    assert {"campus_edge", "aiomqtt", "pydantic", "onnxruntime", "numpy", "prometheus_client"} <= names
    assert (wheelhouse / "TARGET").read_text().startswith("python=3.")


def test_the_offline_install_builds_the_tree_with_a_working_non_editable_edge(installed: Installed) -> None:
    root = installed.root
    lines = installed.first.stdout.splitlines()
    assert all(line.startswith("install: ") for line in lines) and len(lines) >= 15
    assert "install: skipped systemctl" in installed.first.stdout  # nothing outside the root
    edge = root / "opt/edge/venv/bin/edge"
    version = subprocess.run([str(edge), "version"], capture_output=True, text=True, timeout=60, cwd=root)
    assert version.returncode == 0 and version.stdout.strip() == "0.1.0"
    check = subprocess.run([str(edge), "check-config", str(root / "etc/edge/edge.yaml")],
                           capture_output=True, text=True, timeout=60, cwd=root)
    assert check.returncode == 0, check.stderr
    where = subprocess.run([str(root / "opt/edge/venv/bin/python"), "-c",
                            "import edge, edge.config_vision as v\n"
                            "print(edge.__file__)\nprint(v.REPO_MODELS)"],
                           capture_output=True, text=True, timeout=60, cwd=root).stdout.splitlines()
    # A real wheel in site-packages (not the checkout), and the models default is where they were copied.
    assert where[0].startswith(str(root / "opt/edge/venv/lib")) and where[1] == "/opt/edge/models"
    assert not list((root / "opt/edge/venv/lib").glob("python3*/site-packages/__editable__*"))
    assert (root / "opt/edge/models/nanodet.onnx").read_bytes() == (REPO / "models/nanodet.onnx").read_bytes()
    assert (root / "opt/edge/docs/operations.md").exists()
    for name in ("edge.service", "edge-backup.service", "edge-backup.timer"):
        assert (root / "etc/systemd/system" / name).read_text() == (REPO / "systemd" / name).read_text()
    assert (root / "etc/edge/edge.yaml").read_text() == (REPO / "config/edge.example.yaml").read_text()
    assert (root / "etc/edge/edge.example.yaml").exists()


def test_the_user_directories_and_secrets_have_their_owners_and_modes(installed: Installed) -> None:
    root = installed.root
    user = ids(root, "passwd", "edge")
    assert user[5:] == ["/var/lib/edge", "/usr/sbin/nologin"]
    for group in ("dialout", "video"):
        assert "edge" in ids(root, "group", group)[3].split(",")
    uid, gid = int(user[2]), int(ids(root, "group", "edge")[2])
    mosquitto_gid = int(ids(root, "group", "mosquitto")[2])
    expected = {"var/lib/edge": (0o700, uid, gid), "etc/edge": (0o750, 0, gid),
                "var/log/edge": (0o755, uid, gid), "etc/edge/mqtt-local.password": (0o640, 0, gid),
                "etc/edge/edge.yaml": (0o640, 0, gid), "etc/mosquitto/edge.passwd": (0o640, 0, mosquitto_gid),
                "etc/mosquitto/edge.acl": (0o640, 0, mosquitto_gid),
                "etc/mosquitto/conf.d/edge.conf": (0o644, 0, 0)}
    for path, (want_mode, want_uid, want_gid) in expected.items():
        info = (root / path).stat()
        assert mode(root / path) == want_mode, path
        if ROOT:
            assert (info.st_uid, info.st_gid) == (want_uid, want_gid), path


async def test_the_installed_broker_config_accepts_the_generated_password_and_nobody_else(
        installed: Installed, tmp_path: Path) -> None:
    root = installed.root
    password = (root / "etc/edge/mqtt-local.password").read_text().strip()
    assert len(password) >= 24 and password.isalnum()
    conf = (root / "etc/mosquitto/conf.d/edge.conf").read_text()
    mosquitto = root / "etc/mosquitto"
    broker = start_edge_broker(tmp_path, conf, mosquitto / "edge.passwd", mosquitto / "edge.acl")
    try:
        for host, port in broker.ports.items():
            async with aiomqtt.Client(host, port, username="edge", password=password, timeout=5):
                pass
            with pytest.raises(aiomqtt.MqttError):
                async with aiomqtt.Client(host, port, timeout=5):
                    pass
    finally:
        broker.stop()


def test_a_second_run_keeps_edits_and_the_password(installed: Installed) -> None:
    root = installed.root
    config, acl = root / "etc/edge/edge.yaml", root / "etc/mosquitto/edge.acl"
    config.write_text(config.read_text().replace("gateway_id: gw-bldg-a-101", "gateway_id: gw-edited"))
    acl.write_text(acl.read_text() + "user dashboard\ntopic read edge/#\n")
    secrets = ("etc/edge/mqtt-local.password", "etc/mosquitto/edge.passwd")
    before = {p: (root / p).read_bytes() for p in secrets}
    again = install(root, "--no-enable", wheelhouse=installed.wheelhouse)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "gateway_id: gw-edited" in config.read_text() and "user dashboard" in acl.read_text()
    shipped = (REPO / "systemd/mosquitto/edge.acl").read_text()
    assert (root / "etc/mosquitto/edge.acl.dist").read_text() == shipped
    assert {p: (root / p).read_bytes() for p in before} == before
    assert "install: kept /etc/edge/edge.yaml" in again.stdout
    assert "install: unchanged /etc/mosquitto/conf.d/edge.conf" in again.stdout
    assert subprocess.run([str(root / "opt/edge/venv/bin/edge"), "version"], capture_output=True,
                          timeout=60).returncode == 0


def test_uninstall_keeps_data_and_config_and_purge_removes_everything(installed: Installed) -> None:
    root = installed.root
    (root / "var/lib/edge/edge.db").write_text("data")
    kept = install(root, "--uninstall")
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert not (root / "opt/edge").exists() and not (root / "etc/systemd/system/edge.service").exists()
    assert not list((root / "etc/systemd/system").glob("edge-backup.*"))
    assert (root / "var/lib/edge/edge.db").read_text() == "data"
    assert (root / "etc/edge/edge.yaml").exists() and (root / "etc/edge/mqtt-local.password").exists()
    assert (root / "etc/mosquitto/edge.passwd").exists() and ids(root, "passwd", "edge")
    purged = install(root, "--uninstall", "--purge")
    assert purged.returncode == 0, purged.stdout + purged.stderr
    for path in ("var/lib/edge", "etc/edge", "var/log/edge", "etc/mosquitto/conf.d/edge.conf",
                 "etc/mosquitto/edge.passwd", "etc/mosquitto/edge.acl"):
        assert not (root / path).exists(), path
    if ROOT:
        assert ids(root, "passwd", "edge") == [] and ids(root, "group", "edge") == []
        assert "edge" not in ids(root, "group", "dialout")[3].split(",")
    assert ids(root, "passwd", "mosquitto")  # nothing else in the user database was touched


def test_bad_options_and_a_wheelhouse_for_another_target_change_nothing(
        wheelhouse: Path, tmp_path: Path) -> None:
    purge_alone = install(tmp_path / "r1", "--purge")
    assert purge_alone.returncode != 0 and "--purge goes with --uninstall" in purge_alone.stderr
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "TARGET").write_text("python=3.9 machine=riscv64\n")
    refused = install(tmp_path / "r2", wheelhouse=foreign)
    assert refused.returncode != 0 and "this box needs 'python=3." in refused.stderr
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists()
