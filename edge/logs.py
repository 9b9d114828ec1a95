"""Logging set-up: text or one-JSON-object-per-line, plus an error counter."""

from __future__ import annotations

import json
import logging
import sys
from typing import TextIO

from edge.clock import iso_utc


class JsonFormatter(logging.Formatter):
    """One JSON object per record, for journald and log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        """Render a record as a JSON line."""
        out = {
            "ts": iso_utc(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class ErrorCounter(logging.Handler):
    """Count ERROR and CRITICAL records (the demo reports the total)."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        """Count one record."""
        self.count += 1


def setup_logging(level: str = "info", fmt: str = "text", stream: TextIO | None = None) -> ErrorCounter:
    """Configure the root logger once; return the error counter attached to it."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    counter = ErrorCounter()
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.addHandler(counter)
    root.setLevel(level.upper())
    # pymodbus logs every unanswered request as an ERROR with a frame dump; a dead slave
    # is reported once by its availability instead, so only its critical errors pass.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    return counter
