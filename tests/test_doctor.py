"""`edge doctor`: real brokers, real files, real devices; one PASS/WARN/FAIL line per check."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import shutil
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge.cli import main
from edge.config_loader import load_config
from edge.doctor import checks_store
from edge.doctor.report import FAIL, PASS, WARN, Check, Line, run_checks
from edge.store import DB_FILENAME, LATEST_VERSION
from edge.store.database import Database
from tests.conftest import REPO, edge_command, edge_env, free_port, start_mosquitto, write_config

CLIP = REPO / "tests" / "fixtures" / "vtest-cut.mp4"


def doctor(*args: str) -> tuple[int, list[Line], str]:
    """Run `edge doctor --json ...` as a subprocess; return the exit code, the lines and all output."""
    done = subprocess.run([*edge_command(), "doctor", "--json", "--timeout", "3", *args],
                          capture_output=True, text=True, timeout=60, env=edge_env(), cwd=REPO)
    report = json.loads(done.stdout)
    lines = [Line(c["status"], c["check"], c["message"]) for c in report["checks"]]
    assert report["ok"] == (done.returncode == 0)
    return done.returncode, lines, done.stdout + done.stderr


def in_process(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[Line]]:
    """Run `edge doctor -c config` in this process; return the exit code and the lines."""
    code = main(["doctor", "-c", str(config), "--json", "--timeout", "3"])
    report = json.loads(capsys.readouterr().out)
    return code, [Line(c["status"], c["check"], c["message"]) for c in report["checks"]]


def line_of(lines: list[Line], check: str) -> Line:
    found = [line for line in lines if line.check == check]
    assert len(found) == 1, f"{check!r} in {lines}"
    return found[0]


def test_demo_config_passes() -> None:
    done = subprocess.run([*edge_command(), "doctor", "--demo"], capture_output=True, text=True,
                          timeout=60, env=edge_env(), cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    text = done.stdout.splitlines()
    for check in ("config", "data dir", "model nanodet", "model blazeface-full-range", "local broker",
                  "camera cam-corridor-1", "serial node-r101"):
        assert any(line.startswith(f"PASS  {check}: ") for line in text), (check, text)
    assert not any(line.startswith("FAIL") for line in text), text
    assert next(line[:4] for line in text if "  clock: " in line) in (PASS, WARN)
    assert text[-1].startswith("doctor: ") and "0 FAIL" in text[-1]


def test_broker_password_right_wrong_and_nothing_listening(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "edge", "right-pw"], check=True)
    broker = start_mosquitto(tmp_path, extra=f"allow_anonymous false\npassword_file {passwd}")
    secret = tmp_path / "mqtt.pw"
    try:
        cases = (("right-pw", broker.port), ("wrong-pw", broker.port), ("right-pw", free_port()))
        for password, port in cases:
            secret.write_text(password + "\n")
            config = write_config(tmp_path, mqtt={"local": {
                "url": f"mqtt://127.0.0.1:{port}", "username": "edge", "password_file": str(secret)}})
            code, lines, output = doctor("-c", str(config))
            broker_line = line_of(lines, "local broker")
            if port != broker.port:
                assert broker_line.status == FAIL and "unreachable" in broker_line.message
                assert code == 1
            elif password == "wrong-pw":
                assert broker_line.status == FAIL and "authentication failed" in broker_line.message
                assert code == 1
            else:
                assert broker_line.status == PASS and "connected" in broker_line.message
                assert code == 0, output
            assert "right-pw" not in output and "wrong-pw" not in output
    finally:
        broker.stop()


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


Issuer = tuple[x509.Name, ec.EllipticCurvePrivateKey]


def _cert(directory: Path, stem: str, subject: str, issuer: Issuer | None,
          valid: tuple[datetime.timedelta, datetime.timedelta], server: bool = False
          ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """Write stem.pem and stem.key: a CA (issuer None) or a certificate valid from/until now+offsets."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer or (_name(subject), key)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now + valid[0]).not_valid_after(now + valid[1])
               .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    cert = builder.sign(issuer_key, hashes.SHA256())
    (directory / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / f"{stem}.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert, key


def test_tls_broker_cert_expiring_soon_warns_and_expired_client_cert_fails(tmp_path: Path) -> None:
    day = datetime.timedelta(days=1)
    ca, ca_key = _cert(tmp_path, "ca", "Doctor Test CA", None, (-day, 365 * day))
    server, _ = _cert(tmp_path, "server", "localhost", (ca.subject, ca_key), (-day, 10 * day), server=True)
    _cert(tmp_path, "expired", "gw-test", (ca.subject, ca_key), (-30 * day, -day))
    broker = start_mosquitto(tmp_path, extra=(
        f"allow_anonymous true\ncafile {tmp_path / 'ca.pem'}\ncertfile {tmp_path / 'server.pem'}\n"
        f"keyfile {tmp_path / 'server.key'}"))
    url = f"mqtts://localhost:{broker.port}"
    try:
        tls_settings = {"ca_file": str(tmp_path / "ca.pem")}
        config = write_config(tmp_path, mqtt={"local": {"url": url, "tls": tls_settings}})
        code, lines, output = doctor("-c", str(config))
        tls = line_of(lines, "local broker TLS")
        assert tls.status == WARN, output
        assert server.not_valid_after_utc.strftime("%Y-%m-%d") in tls.message
        assert line_of(lines, "local broker").status == PASS
        assert code == 0, output

        config = write_config(tmp_path, mqtt={"local": {"url": url, "tls": {
            "ca_file": str(tmp_path / "ca.pem"), "cert_file": str(tmp_path / "expired.pem"),
            "key_file": str(tmp_path / "expired.key")}}})
        code, lines, output = doctor("-c", str(config))
        client = line_of(lines, "local broker client cert")
        assert client.status == FAIL and "expired" in client.message
        assert code == 1
    finally:
        broker.stop()


def test_tampered_model_fails_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    models = tmp_path / "models"
    shutil.copytree(REPO / "models", models)
    onnx = models / "nanodet.onnx"
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx.write_bytes(bytes(data))
    code, lines = in_process(write_config(tmp_path, vision={"models_dir": str(models)}), capsys)
    bad = line_of(lines, "model nanodet")
    assert bad.status == FAIL and "nanodet.onnx" in bad.message and "sha256" in bad.message
    assert line_of(lines, "model blazeface-full-range").status == PASS
    assert code == 1


def test_serial_port_missing_fails_and_a_pty_passes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    master, slave = os.openpty()
    try:
        pty = os.ttyname(slave)
        missing = str(tmp_path / "ttyUSB-gone")
        config = write_config(tmp_path, devices=[
            {"id": "node-gone", "type": "node", "room_id": "r1", "port": missing},
            {"id": "node-pty", "type": "node", "room_id": "r1", "port": pty}])
        code, lines = in_process(config, capsys)
    finally:
        os.close(master)
        os.close(slave)
    gone = line_of(lines, "serial node-gone")
    assert gone.status == FAIL and missing in gone.message and "does not exist" in gone.message
    ok = line_of(lines, "serial node-pty")
    assert ok.status == PASS and "character device" in ok.message
    assert code == 1


def test_invalid_config_fails_without_traceback(tmp_path: Path) -> None:
    config = write_config(tmp_path, site_id="bad site/#", retention={"audit_days": 30}, colour="blue")
    code, lines, output = doctor("-c", str(config))
    problems = [line for line in lines if line.check == "config"]
    assert {line.status for line in problems} == {FAIL}
    assert any("site_id" in line.message for line in problems)
    assert any("audit_days" in line.message for line in problems)
    assert any("colour" in line.message and "unknown key" in line.message for line in problems)
    assert not any(line.check.startswith(("model", "data dir", "local broker")) for line in lines)
    assert code == 1 and "Traceback" not in output


def test_cameras_missing_file_fails_and_the_sample_clip_passes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, cameras=[
        {"id": "cam-gone", "room_id": "r1", "url": f"file:{tmp_path / 'gone.mp4'}"},
        {"id": "cam-clip", "room_id": "r1", "url": f"file:{CLIP}"},
        {"id": "cam-off", "room_id": "r1", "url": f"file:{tmp_path / 'also-gone.mp4'}", "enabled": False}])
    code, lines = in_process(config, capsys)
    gone = line_of(lines, "camera cam-gone")
    assert gone.status == FAIL and "not found" in gone.message
    clip = line_of(lines, "camera cam-clip")
    assert clip.status == PASS and "768x576" in clip.message
    assert not any(line.check == "camera cam-off" for line in lines)
    assert code == 1


def test_database_schema_versions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    Database(data / DB_FILENAME, target_version=LATEST_VERSION - 1).db.conn.close()
    code, lines = in_process(write_config(tmp_path), capsys)
    older = line_of(lines, "database")
    assert older.status == WARN and "migrated on start" in older.message
    assert line_of(lines, "database integrity").status == PASS
    with sqlite3.connect(data / DB_FILENAME) as conn:
        conn.execute("INSERT INTO schema_version (version, description) VALUES (?, 'future')",
                     [LATEST_VERSION + 1])
    code, lines = in_process(write_config(tmp_path), capsys)
    assert line_of(lines, "database").status == FAIL and "newer" in line_of(lines, "database").message
    assert code == 1


def test_an_integrity_check_past_its_deadline_is_a_warning_and_keeps_the_version_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    database = Database(data / DB_FILENAME)
    with database.db.conn:
        database.db.conn.executemany(
            "INSERT INTO readings (ts, device_id, metric, value, unit) VALUES (?, 'd', 'co2', ?, 'ppm')",
            [(float(i), 400.0 + i % 50) for i in range(20_000)])
    database.db.conn.close()
    config = load_config(write_config(tmp_path))
    version, integrity = checks_store.database(config, timeout_s=0.0)
    assert version.status == PASS and "current" in version.message
    assert integrity.status == WARN and "did not finish within 0s" in integrity.message
    assert [line.status for line in checks_store.database(config, timeout_s=30.0)] == [PASS, PASS]


def test_a_hanging_or_crashing_check_becomes_a_fail_line() -> None:
    release = threading.Event()

    def crash() -> list[Line]:
        raise RuntimeError("boom")

    checks = [Check("hangs", lambda: [Line(PASS, "hangs", "never")] if release.wait(30) else []),
              Check("crashes", crash), Check("fine", lambda: [Line(PASS, "fine", "ok")])]
    started = time.monotonic()
    lines, hung = run_checks(checks, 0.5)
    release.set()
    assert time.monotonic() - started < 2
    assert hung
    assert lines[0] == Line(FAIL, "hangs", "no answer within 0.5s (timed out)")
    assert lines[1].status == FAIL and "RuntimeError: boom" in lines[1].message
    assert lines[2] == Line(PASS, "fine", "ok")


def test_central_broker_v5_login_and_host_name_mismatch(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "gw", "right-pw"], check=True)
    day = datetime.timedelta(days=1)
    ca, ca_key = _cert(tmp_path, "ca", "Doctor Test CA", None, (-day, 365 * day))
    _cert(tmp_path, "server", "elsewhere.example", (ca.subject, ca_key), (-day, 90 * day))
    plain = start_mosquitto(tmp_path / "plain", extra=f"allow_anonymous false\npassword_file {passwd}")
    tls = start_mosquitto(tmp_path / "tls", extra=(
        f"allow_anonymous true\ncafile {tmp_path / 'ca.pem'}\ncertfile {tmp_path / 'server.pem'}\n"
        f"keyfile {tmp_path / 'server.key'}"))
    secret = tmp_path / "uplink.pw"
    secret.write_text("wrong-pw\n")
    try:
        code, lines = in_process(write_config(tmp_path, uplink={
            "url": f"mqtt://127.0.0.1:{plain.port}", "username": "gw", "password_file": str(secret)}), capsys)
        refused = line_of(lines, "central broker")
        assert refused.status == FAIL and "authentication failed" in refused.message
        assert code == 1
        code, lines = in_process(write_config(tmp_path, uplink={
            "url": f"mqtts://localhost:{tls.port}", "tls_ca_file": str(tmp_path / "ca.pem")}), capsys)
        mismatch = line_of(lines, "central broker TLS")
        assert mismatch.status == FAIL and "not valid for 'localhost'" in mismatch.message
        assert not any(line.check == "central broker" for line in lines)  # no CONNECT after that
        assert code == 1
    finally:
        plain.stop()
        tls.stop()
