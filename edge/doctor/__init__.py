"""`edge doctor`: check an installation, one PASS/WARN/FAIL line per check."""

from edge.doctor.cli import add_parser, run_doctor

__all__ = ["add_parser", "run_doctor"]
