"""The console's certificate and port, and clock synchronisation."""

from __future__ import annotations

import errno
import json
import shutil
import socket
import ssl
import subprocess
import urllib.request
from pathlib import Path

from edge.config import EdgeConfig
from edge.doctor.certs import file_expiry_line
from edge.doctor.report import FAIL, PASS, WARN, Line

TIMESYNC_FLAG = Path("/run/systemd/timesync/synchronized")


def console(config: EdgeConfig, timeout_s: float) -> list[Line]:
    """The console's TLS certificate (if any) and whether its port is free or already ours."""
    settings = config.console
    if not settings.enabled:
        return [Line(PASS, "console", "disabled (console.enabled: false)")]
    lines = []
    if settings.tls_cert_file is not None:
        lines.append(file_expiry_line("console TLS", "certificate", settings.tls_cert_file))
    lines.append(_console_port(settings.host, settings.port, settings.tls, timeout_s))
    return lines


def _console_port(host: str, port: int, tls: bool, timeout_s: float) -> Line:
    where = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    if port == 0:
        return Line(PASS, "console port", "port 0: a free port is chosen at start")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds it
            sock.bind((host, port))
        return Line(PASS, "console port", f"{where} is free")
    except OSError as err:
        if err.errno != errno.EADDRINUSE:
            return Line(FAIL, "console port", f"cannot listen on {where}: {err.strerror or err} "
                                              "(console.host must be an address of this box)")
    if _is_edge_console(host, port, tls, timeout_s):
        return Line(PASS, "console port", f"{where} is already served by an edge console (daemon running)")
    return Line(FAIL, "console port", f"{where} is taken by another program: stop it or change "
                                      "console.port (ss -ltnp shows who listens)")


def _is_edge_console(host: str, port: int, tls: bool, timeout_s: float) -> bool:
    probe = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    netloc = f"[{probe}]:{port}" if ":" in probe else f"{probe}:{port}"
    # Only asking "is this our console?": the certificate may be self-signed or for another name.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    url = f"{'https' if tls else 'http'}://{netloc}/api/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s, context=context) as answer:
            return bool(json.loads(answer.read(1000)).get("status") == "ok")
    except (OSError, ValueError, AttributeError):
        return False


def clock(timeout_s: float) -> list[Line]:
    """Is the clock synchronised (NTP)? Event timestamps and TLS depend on it."""
    synced = _timedatectl(timeout_s)
    if synced is None and TIMESYNC_FLAG.parent.is_dir():
        synced = TIMESYNC_FLAG.exists()
    if synced is None:
        return [Line(WARN, "clock", "cannot tell whether the clock is synchronised (no timedatectl "
                                    f"answer, no {TIMESYNC_FLAG.parent}): check NTP by hand; event times "
                                    "depend on it")]
    if synced:
        return [Line(PASS, "clock", "synchronised (NTP)")]
    return [Line(WARN, "clock", "not synchronised: timestamps of events depend on it; enable NTP "
                                "(timedatectl set-ntp true) or point it at the school's time server")]


def _timedatectl(timeout_s: float) -> bool | None:
    binary = shutil.which("timedatectl")
    if binary is None:
        return None
    try:
        done = subprocess.run([binary, "show", "-p", "NTPSynchronized", "--value"], capture_output=True,
                              text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    value = done.stdout.strip()
    if done.returncode != 0 or value not in ("yes", "no"):
        return None
    return value == "yes"
