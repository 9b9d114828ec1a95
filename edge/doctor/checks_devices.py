"""Serial ports of node and Modbus devices, and the models' sha256."""

from __future__ import annotations

import getpass
import grp
import hashlib
import os
import socket
import stat
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from edge.config import EdgeConfig
from edge.config_devices import ModbusDeviceConfig, NodeDeviceConfig
from edge.doctor.report import FAIL, PASS, WARN, Check, Line

DEMO_PORTS = "/dev/demo/"  # placeholders that `edge demo` replaces with ptys it opens


def serial_checks(config: EdgeConfig, demo: bool, timeout_s: float) -> list[Check]:
    """One check per port used by node or Modbus devices (devices sharing an RS-485 bus share one)."""
    ports: dict[str, list[str]] = {}
    for dev in config.devices:
        if isinstance(dev, NodeDeviceConfig | ModbusDeviceConfig):
            ports.setdefault(dev.port, []).append(dev.id)
    checks = []
    for port, ids in ports.items():
        name = f"serial {', '.join(ids)}"

        def run(port: str = port, name: str = name) -> list[Line]:
            if demo and port.startswith(DEMO_PORTS):
                return [Line(PASS, name, f"{port} is simulated by edge demo (a pty or virtual line that "
                                         "exists only while the demo runs)")]
            if port.startswith("tcp://"):
                return [tcp_port(name, port, timeout_s)]
            return [serial_port(name, Path(port))]

        checks.append(Check(name, run))
    return checks


def serial_port(name: str, path: Path) -> Line:
    """The device exists, is a character device and this user may read and write it."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return Line(FAIL, name, f"{path} does not exist: is the adapter plugged in? "
                                "(ls -l /dev/serial/by-id/ lists the connected ones)")
    except OSError as err:
        return Line(FAIL, name, f"{path}: {err.strerror or err}")
    if not stat.S_ISCHR(info.st_mode):
        return Line(FAIL, name, f"{path} is not a character device (a serial port is)")
    user = getpass.getuser()
    if os.access(path, os.R_OK | os.W_OK):
        return Line(PASS, name, f"{path} is a character device, readable and writable by {user}")
    try:
        group = grp.getgrgid(info.st_gid).gr_name
    except KeyError:
        group = str(info.st_gid)
    return Line(FAIL, name, f"{path} is not readable and writable by {user} (mode "
                            f"{stat.filemode(info.st_mode)}, group {group}): the edge user must be in "
                            f"group {group} (usermod -aG {group} edge, then restart the service)")


def tcp_port(name: str, port: str, timeout_s: float) -> Line:
    """A serial-to-Ethernet converter or Modbus TCP device accepts a connection."""
    parts = urlsplit(port)
    try:
        with socket.create_connection((parts.hostname or "", parts.port or 0), timeout=timeout_s):
            pass
    except OSError as err:
        return Line(FAIL, name, f"{port} unreachable: {err.strerror or err}")
    return Line(PASS, name, f"{port} accepts connections")


def model_checks(config: EdgeConfig) -> list[Check]:
    """One check per model card in vision.models_dir, plus the cards the config names."""
    models_dir = config.vision.models_dir
    cards = sorted(models_dir.glob("*.yaml")) if models_dir.is_dir() else []
    if not cards:
        status = FAIL if any(cam.enabled for cam in config.cameras) else WARN
        empty = Line(status, "models", f"no model cards (*.yaml) in {models_dir}")
        return [Check("models", partial(_found, empty))]
    checks = [Check(f"model {card.stem}", partial(_card_lines, card)) for card in cards]
    named = {config.vision.person_model, config.vision.face_model}
    for missing in sorted(named - {card.name for card in cards}):
        checks.append(Check("models", partial(_found, Line(
            FAIL, "models", f"card {missing} named in vision: is not in {models_dir}"))))
    return checks


def _found(line: Line) -> list[Line]:
    return [line]


def _card_lines(card: Path) -> list[Line]:
    return [model_card(card)]


def model_card(card: Path) -> Line:
    """Recompute the sha256 of the card's .onnx file and compare it with the card."""
    name = f"model {card.stem}"
    try:
        data = yaml.safe_load(card.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        return Line(FAIL, name, f"cannot read the card {card}: {err}")
    if not isinstance(data, dict) or not data.get("file") or not data.get("sha256"):
        return Line(FAIL, name, f"{card} has no file: and sha256: keys")
    model = card.parent / str(data["file"])
    digest = hashlib.sha256()
    try:
        with model.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as err:
        return Line(FAIL, name, f"{model} cannot be read: {err.strerror or err} (reinstall the models)")
    if digest.hexdigest() != str(data["sha256"]).lower():
        return Line(FAIL, name, f"{model.name} sha256 does not match its card: the file is damaged or "
                                "replaced; reinstall it (the daemon refuses to load it)")
    return Line(PASS, name, f"{model.name} sha256 matches its card")
