"""Logging set-up: text or one-JSON-object-per-line, journald-aware, plus an error counter."""

from __future__ import annotations

import json
import logging
import os
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


def syslog_priority(levelno: int) -> int:
    """The syslog priority journald files a record under (err, warning, info, debug)."""
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


class JournalFormatter(logging.Formatter):
    """Text for journald: a `<N>` priority prefix (SyslogLevelPrefix) and no timestamp of our own."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """Prefix every line: journald reads the prefix of each line it receives."""
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


HANDLER_NAME = "edge"  # the stream handler setup_logging installs (apply_log_config finds it)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def under_journald() -> bool:
    """True when stdout/stderr is connected to the journal (systemd sets JOURNAL_STREAM)."""
    return bool(os.environ.get("JOURNAL_STREAM"))


class JournalJsonFormatter(JsonFormatter):
    """JSON for journald: the priority prefix, which journald strips, so MESSAGE is the bare object."""

    def format(self, record: logging.LogRecord) -> str:
        """One `<N>{...}` line."""
        return f"<{syslog_priority(record.levelno)}>{super().format(record)}"


def make_formatter(fmt: str) -> logging.Formatter:
    """The formatter for a config log.format ('text' or 'json'), with priorities under journald."""
    journal = under_journald()
    if fmt == "json":
        return JournalJsonFormatter() if journal else JsonFormatter()
    return JournalFormatter() if journal else logging.Formatter(TEXT_FORMAT)


class ErrorCounter(logging.Handler):
    """Count ERROR and CRITICAL records (the demo reports the total)."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        """Count one record."""
        self.count += 1


def setup_logging(level: str = "info", fmt: str = "text", stream: TextIO | None = None) -> ErrorCounter:
    """Configure the root logger once (stderr unless a stream is given); return its error counter."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(make_formatter(fmt))
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


def apply_log_config(level: str, fmt: str) -> None:
    """Change the level and format of the running log (a config reload); the stream stays."""
    root = logging.getLogger()
    root.setLevel(level.upper())
    for handler in root.handlers:
        if handler.get_name() == HANDLER_NAME:
            handler.setFormatter(make_formatter(fmt))
