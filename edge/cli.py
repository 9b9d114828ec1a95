"""The `edge` command."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from edge import __version__
from edge.app import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, Gateway
from edge.backup_cli import add_parsers as add_backup_parsers
from edge.backup_cli import run_backup_cli
from edge.config_loader import check_config, load_config
from edge.detect_cli import add_parser as add_detect_parser
from edge.detect_cli import run_detect
from edge.doctor import add_parser as add_doctor_parser
from edge.doctor import run_doctor
from edge.errors import ConfigError, EdgeError, SecretUnavailable
from edge.logs import setup_logging
from edge.user_cli import add_parser as add_user_parser
from edge.user_cli import run_user


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge", description="Campus edge controller.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the gateway daemon", description="Run the gateway daemon.")
    run.add_argument("--config", "-c", type=Path, required=True, help="path of the YAML config")

    check = sub.add_parser("check-config", help="validate a config file",
                           description="Validate a config file; exit 2 listing every problem.")
    check.add_argument("path", type=Path, help="path of the YAML config")

    sub.add_parser("version", help="print the version", description="Print the version.")
    add_detect_parser(sub)
    add_user_parser(sub)
    add_doctor_parser(sub)
    add_backup_parsers(sub)

    demo = sub.add_parser(
        "demo", help="run a demo gateway with an embedded broker and simulated classroom",
        description="Run the whole gateway in one process on a demo config.",
    )
    demo.add_argument("--duration", type=float, default=None,
                      help="stop after S seconds and print a JSON summary as the last line")
    demo.add_argument("--data-dir", type=Path, default=None,
                      help="data directory (default: a fresh temporary one); reuse to continue")
    demo.add_argument("--http-port", type=int, default=8080,
                      help="console port on 127.0.0.1 (default 8080; 0 = any free port)")
    demo.add_argument("--admin-password", default=None,
                      help="password of the demo's console user 'admin' (default: $EDGE_DEMO_PASSWORD, "
                           "else a random one, printed)")
    demo.add_argument("--uplink", default=None,
                      help="forward to this central broker (mqtt://HOST:PORT or mqtts://...) with the "
                           "demo's site and gateway ids (contract campus/v1)")
    simulate = sub.add_parser("simulate", help="simulate classroom devices",
                              description="Simulate classroom devices for demos and bench tests.")
    devices = simulate.add_subparsers(dest="device", required=True, metavar="DEVICE")
    node = devices.add_parser(
        "node", help="a sensor node speaking node protocol v1",
        description="A sensor node speaking node protocol v1 on a serial port or a new pty.",
    )
    where = node.add_mutually_exclusive_group(required=True)
    where.add_argument("--serial", metavar="PATH", help="serial device to speak on")
    where.add_argument("--pty", action="store_true", help="open a pseudo-terminal and print its path")
    node.add_argument("--node-id", default="sim-node-1", help="node id sent in HELLO")
    node.add_argument("--interval", type=float, default=5.0, help="seconds between TELEMETRY")
    node.add_argument("--garbage-every", type=int, default=0,
                      help="inject line noise before every Nth report (0 = never)")
    node.add_argument("--panic-every", type=float, default=0.0,
                      help="press the panic button every S seconds (0 = never)")
    node.add_argument("--dropout-every", type=float, default=0.0,
                      help="fall silent every S seconds, like a hung node (0 = never)")
    node.add_argument("--dropout-for", type=float, default=10.0,
                      help="how long each dropout lasts, seconds (default 10)")
    return parser


def _simulate(args: argparse.Namespace) -> int:
    from firmware_bridge.errors import TransportError
    from firmware_bridge.simulator import simulate

    try:
        asyncio.run(simulate(None if args.pty else args.serial, args.node_id, args.interval,
                             args.garbage_every, args.panic_every, args.dropout_every,
                             args.dropout_for))
    except TransportError as err:
        print(f"edge: {err}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def _check_config(path: Path) -> int:
    problems = check_config(path)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{path}: {len(problems)} problem(s)", file=sys.stderr)
        return EXIT_CONFIG
    print(f"{path}: OK")
    return EXIT_OK


def _run(path: Path) -> int:
    try:
        config = load_config(path)
    except ConfigError as err:
        for problem in err.problems:
            print(problem, file=sys.stderr)
        return EXIT_CONFIG
    # stdout: systemd hands it to the journal; stderr stays for problems before logging starts.
    setup_logging(config.log.level, config.log.format, sys.stdout)
    return asyncio.run(Gateway(config, config_path=path).run())


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `edge` command; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "version":
            print(__version__)
            return EXIT_OK
        if args.command == "check-config":
            return _check_config(args.path)
        if args.command == "run":
            return _run(args.config)
        if args.command == "simulate":
            return _simulate(args)
        if args.command == "detect":
            return run_detect(args)
        if args.command == "user":
            return run_user(args)
        if args.command == "doctor":
            return run_doctor(args)
        if args.command in ("backup", "restore"):
            return run_backup_cli(args)
        if args.command == "demo":
            from edge.demo import run_demo

            errors = setup_logging("info")
            return run_demo(args.duration, args.data_dir, errors, args.http_port, args.admin_password,
                            args.uplink)
    except SecretUnavailable as err:
        print(f"edge: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except EdgeError as err:
        print(f"edge: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_FAILURE
