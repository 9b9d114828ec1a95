"""The `edge doctor` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from importlib.resources import files
from pathlib import Path
from typing import Any

from edge.config import EdgeConfig
from edge.config_loader import load_config, parse_config_text
from edge.doctor import checks_host, checks_mqtt, checks_store
from edge.doctor.checks_cameras import camera_checks
from edge.doctor.checks_devices import model_checks, serial_checks
from edge.doctor.report import FAIL, PASS, WARN, Check, Line, run_checks, summary
from edge.errors import ConfigError

DEMO_CONFIG = "edge/resources/demo.yaml"
DEMO_DATA_DIR = Path("/tmp/edge-demo")  # the demo's own default; `edge demo` usually takes a fresh one
GRACE_S = 3.0  # on top of --timeout: a check's own timeouts should fire first and say more


def add_parser(sub: Any) -> None:
    """Add the `doctor` subcommand."""
    doctor = sub.add_parser("doctor", help="check this installation",
                            description="Check the config, brokers, cameras, serial ports, models, disk "
                                        "and clock; one PASS/WARN/FAIL line each; exit 1 on any FAIL.")
    doctor.add_argument("--config", "-c", type=Path, default=Path("/etc/edge/edge.yaml"),
                        help="path of the YAML config (default /etc/edge/edge.yaml)")
    doctor.add_argument("--demo", action="store_true",
                        help="check the packaged demo config instead (embedded broker, simulated devices)")
    doctor.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    doctor.add_argument("--timeout", type=float, default=5.0, metavar="S",
                        help="seconds each network or camera check may take (default 5)")


def _load(args: argparse.Namespace) -> tuple[EdgeConfig | None, list[Line]]:
    try:
        if args.demo:
            from edge.demo import demo_config
            from edge.demo_devices import demo_cameras

            text = files("edge").joinpath("resources/demo.yaml").read_text(encoding="utf-8")
            parse_config_text(text, DEMO_CONFIG)  # the packaged file itself, as shipped
            config = demo_config(DEMO_DATA_DIR)
            config = config.model_copy(update={"cameras": demo_cameras(config)})
            return config, [Line(PASS, "config", f"{DEMO_CONFIG} (the demo config) is valid")]
        config = load_config(args.config)
    except ConfigError as err:
        return None, [Line(FAIL, "config", str(problem)) for problem in err.problems]
    return config, [Line(PASS, "config", f"{args.config} is valid")]


def build_checks(config: EdgeConfig, demo: bool, timeout_s: float) -> list[Check]:
    """Every check that needs a valid config, in the order they are printed."""
    return [
        Check("data dir", lambda: checks_store.data_dir(config)),
        Check("database", lambda: checks_store.database(config, timeout_s)),
        Check("local broker", lambda: checks_mqtt.local_broker(config, timeout_s)),
        Check("central broker", lambda: checks_mqtt.central_broker(config, timeout_s)),
        Check("console", lambda: checks_host.console(config, timeout_s)),
        *camera_checks(config, timeout_s),
        *serial_checks(config, demo, timeout_s),
        *model_checks(config),
    ]


def run_doctor(args: argparse.Namespace) -> int:
    """Run every check and print its line; return the exit code."""
    if args.timeout <= 0:
        print("edge doctor: --timeout must be positive", file=sys.stderr)
        return 2
    config, lines = _load(args)
    checks = build_checks(config, args.demo, args.timeout) if config is not None else []
    checks.append(Check("clock", lambda: checks_host.clock(args.timeout)))
    found, hung = run_checks(checks, args.timeout + GRACE_S)
    lines.extend(found)
    if config is None:
        lines.insert(len(lines) - len(found), Line(WARN, "checks", "skipped the checks that need a valid "
                                                                   "config; fix the config first"))
    counts = summary(lines)
    code = 1 if counts[FAIL] else 0
    if args.json:
        print(json.dumps({"ok": code == 0, "summary": counts,
                          "checks": [{"status": ln.status, "check": ln.check, "message": ln.message}
                                     for ln in lines]}))
    else:
        for line in lines:
            print(line.text())
        verdict = "problems found" if code else "all good"
        print(f"doctor: {counts['PASS']} PASS, {counts['WARN']} WARN, {counts['FAIL']} FAIL: {verdict}")
    if hung:
        # A check is stuck in native code (an RTSP open); interpreter shutdown could wait on or
        # crash in it, so leave now that everything is printed.
        sys.stdout.flush()
        os._exit(code)
    return code
