"""Config validation: every problem reported as FILE:LINE: key.path: message."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from edge.config_loader import check_config, load_config, parse_config_text
from edge.demo import demo_config
from edge.errors import ConfigError, SecretUnavailable
from tests.conftest import REPO, edge_command

BASE = """\
site_id: s1
gateway_id: g1
rooms:
  - id: r1
devices:
  - id: d1
    type: simulated
    room_id: r1
"""


def problems_for(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "edge.yaml"
    path.write_text(text)
    return [str(p) for p in check_config(path)]


def test_example_config_is_valid() -> None:
    assert check_config(REPO / "config" / "edge.example.yaml") == []


def test_packaged_demo_config_is_valid(tmp_path: Path) -> None:
    config = demo_config(tmp_path)
    assert config.data_dir == tmp_path
    types = [d.type for d in config.devices]
    assert types.count("node") == 2 and "modbus" in types and "pjlink" in types


def test_every_config_field_has_a_description() -> None:
    from pydantic import BaseModel

    from edge import config, config_base, config_devices

    models = [v for mod in (config, config_base, config_devices) for v in vars(mod).values()
              if isinstance(v, type) and issubclass(v, BaseModel) and v.__module__ == mod.__name__]
    assert len(models) > 5
    missing = [f"{m.__name__}.{name}" for m in models for name, f in m.model_fields.items()
               if not f.description]
    assert missing == []


def test_misspelt_key_names_line_path_and_suggestion(tmp_path: Path) -> None:
    text = BASE + "mqtt:\n  local:\n    keepalve_s: 10\n"
    (problem,) = problems_for(tmp_path, text)
    assert problem == (f"{tmp_path / 'edge.yaml'}:11: mqtt.local.keepalve_s: "
                       "unknown key; did you mean 'keepalive_s'?")


def test_wrong_type_and_missing_value_reported_together(tmp_path: Path) -> None:
    text = BASE.replace("gateway_id: g1\n", "") + "    interval_s: often\n"
    found = problems_for(tmp_path, text)
    assert len(found) == 2
    assert found[0].endswith(":1: gateway_id: required key is missing")
    assert re.search(r":8: devices\[0\]\.interval_s: Input should be a valid number",
                     found[1])


def test_cross_field_error_points_at_the_offending_key(tmp_path: Path) -> None:
    text = BASE.replace("    room_id: r1", "    room_id: r9")
    (problem,) = problems_for(tmp_path, text)
    assert problem.endswith(":8: devices[0].room_id: room 'r9' is not defined under rooms")


def test_duplicate_room_id(tmp_path: Path) -> None:
    text = BASE.replace("  - id: r1\n", "  - id: r1\n  - id: r1\n")
    (problem,) = problems_for(tmp_path, text)
    assert ":5: rooms[1].id: room id 'r1' is used twice" in problem


def test_inline_password_is_refused(tmp_path: Path) -> None:
    text = BASE + "mqtt:\n  local:\n    url: mqtt://broker:1883\n    username: u\n    password: hunter2\n"
    (problem,) = problems_for(tmp_path, text)
    assert ":13: mqtt.local.password: inline passwords are not allowed" in problem


@pytest.mark.parametrize(
    ("local", "line", "message"),
    [
        ("    url: mqtt://b\n    tls:\n      cert_file: /c.pem\n", 12,
         "mqtt.local.tls.key_file: cert_file and key_file must be set together"),
        ("    url: http://b\n", 11, "mqtt.local.url: must be 'embedded' or mqtt://"),
        ("    url: embedded\n    username: u\n", 12,
         "mqtt.local.username: the embedded broker takes no credentials"),
        ("    url: mqtt://b\n    password_env: X\n", 10,
         "mqtt.local.username: a password needs a username"),
        ("    reconnect:\n      initial_s: 10\n      max_s: 1\n", 13,
         "mqtt.local.reconnect.max_s: max_s must be >= initial_s"),
        ("    topic_prefix: edge/{room}\n", 11,
         "mqtt.local.topic_prefix: Value error, only {site_id}"),
    ],
)
def test_mqtt_section_cross_checks(tmp_path: Path, local: str, line: int, message: str) -> None:
    (problem,) = problems_for(tmp_path, BASE + "mqtt:\n  local:\n" + local)
    assert f":{line}: " in problem
    assert message.replace("Value error, ", "") in problem.replace("Value error, ", "")


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    (problem,) = problems_for(tmp_path, BASE + "log: [unclosed\n")
    assert re.search(r":1[0-9]: <yaml>: ", problem)


def test_non_mapping_and_unreadable_files(tmp_path: Path) -> None:
    assert "must be a mapping" in problems_for(tmp_path, "- a\n- b\n")[0]
    (problem,) = check_config(tmp_path / "absent.yaml")
    assert "cannot read" in problem.message


def test_load_config_raises_with_all_problems(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text("site_id: 'bad/id'\ngateway_id: 'x y'\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert [p.path for p in caught.value.problems] == ["site_id", "gateway_id"]


def test_secrets_from_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    from_file = parse_config_text(
        BASE + f"mqtt:\n  local:\n    url: mqtt://b\n    username: u\n    password_file: {secret}\n", "t")
    assert from_file.mqtt.local.resolve_password("x") == "s3cret"
    from_env = parse_config_text(
        BASE + "mqtt:\n  local:\n    url: mqtt://b\n    username: u\n    password_env: EDGE_T_PW\n", "t")
    monkeypatch.delenv("EDGE_T_PW", raising=False)
    with pytest.raises(SecretUnavailable, match="EDGE_T_PW is not set"):
        from_env.mqtt.local.resolve_password("mqtt.local")
    monkeypatch.setenv("EDGE_T_PW", "pw2")
    assert from_env.mqtt.local.resolve_password("x") == "pw2"


def test_check_config_cli_exit_codes_and_no_traceback(tmp_path: Path) -> None:
    ok = subprocess.run([*edge_command(), "check-config", str(REPO / "config/edge.example.yaml")],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE + "lgo:\n  level: info\n")
    result = subprocess.run([*edge_command(), "check-config", str(bad)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"{bad}:9: lgo: unknown key; did you mean 'log'?" in result.stderr.splitlines()
    assert "Traceback" not in result.stderr


def test_run_with_invalid_config_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("site_id: s\n")
    result = subprocess.run([*edge_command(), "run", "--config", str(bad)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "gateway_id: required key is missing" in result.stderr
    assert "Traceback" not in result.stderr


MODBUS = BASE.replace("""  - id: d1
    type: simulated
    room_id: r1
""", """  - id: m1
    type: modbus
    room_id: r1
    port: /dev/ttyUSB0
    unit_id: 1
    registers:
      - {metric: co2, address: 0}
""")


@pytest.mark.parametrize(("change", "expected"), [
    (("unit_id: 1", "unit_id: 0"), ":10: devices[0].unit_id: on an RTU line unit_id is 1-247"),
    (("{metric: co2, address: 0}", "{metric: co2, address: 65535, type: float32}"),
     "devices[0].registers[0].address: a float32 at 65535 runs past register 65535"),
    (("{metric: co2, address: 0}", "{metric: co2, address: 0, scale: .nan}"),
     "devices[0].registers[0].scale: Input should be a finite number"),
    (("{metric: co2, address: 0}", "{metric: co2, address: 0, function: coil}"),
     "devices[0].registers[0].type: coil and discrete inputs are type bool"),
    (("    port: /dev/ttyUSB0", "    port: ttyUSB0"), "devices[0].port: must be an absolute serial"),
])
def test_modbus_device_problems(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    assert problems_for(tmp_path, MODBUS) == []
    (problem,) = problems_for(tmp_path, MODBUS.replace(*change))
    assert expected in problem


def test_two_mqtt_sensors_on_one_topic_and_devices_sharing_a_node_port(tmp_path: Path) -> None:
    sensor = "  - {id: %s, type: mqtt, room_id: r1, topic: z2m/a, values: [{metric: t, path: t}]}\n"
    (problem,) = problems_for(tmp_path, BASE + sensor % "s1" + sensor % "s2")
    assert "devices[2].topic: topic 'z2m/a' is already read by 's1'" in problem
    node = "  - {id: %s, type: node, room_id: r1, port: /dev/ttyACM0}\n"
    (problem,) = problems_for(tmp_path, BASE + node % "n1" + node % "n2")
    assert "devices[2].port: port /dev/ttyACM0 is used by another device" in problem
