"""The `edge doctor` command line."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    """Add the `doctor` subcommand."""
    doctor = sub.add_parser("doctor", help="check this installation",
                            description="Check the config, brokers, cameras, serial ports, models, disk "
                                        "and clock; one PASS/WARN/FAIL line each; exit 1 on any FAIL.")
    doctor.add_argument("--config", "-c", type=Path, default=Path("/etc/edge/edge.yaml"),
                        help="path of the YAML config (default /etc/edge/edge.yaml)")


def run_doctor(args: argparse.Namespace) -> int:
    """Run every check and print its line; return the exit code."""
    raise NotImplementedError("edge doctor is being written")
