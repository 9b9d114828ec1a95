"""Logging for journald: priority prefixes under systemd, JSON lines, and live level changes."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from edge.logs import apply_log_config, setup_logging


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def emit(level: int, message: str) -> None:
    logging.getLogger("edge.test").log(level, message)


def test_under_journald_text_lines_carry_the_syslog_priority_and_no_timestamp(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    out = io.StringIO()
    setup_logging("debug", "text", out)
    emit(logging.DEBUG, "d")
    emit(logging.INFO, "i")
    emit(logging.WARNING, "w")
    emit(logging.ERROR, "e")
    emit(logging.CRITICAL, "c")
    assert out.getvalue().splitlines() == [
        "<7>DEBUG edge.test: d", "<6>INFO edge.test: i", "<4>WARNING edge.test: w",
        "<3>ERROR edge.test: e", "<3>CRITICAL edge.test: c"]


def test_under_journald_every_line_of_a_traceback_keeps_its_priority(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    out = io.StringIO()
    setup_logging("info", "text", out)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("edge.test").exception("failed")
    lines = out.getvalue().splitlines()
    assert len(lines) > 2 and all(line.startswith("<3>") for line in lines)
    assert lines[-1] == "<3>ValueError: boom"


def test_outside_systemd_text_has_a_timestamp_and_no_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    out = io.StringIO()
    setup_logging("info", "text", out)
    emit(logging.WARNING, "w")
    line = out.getvalue().rstrip("\n")
    assert not line.startswith("<") and line.endswith(" WARNING edge.test: w") and line[:4].isdigit()


def test_json_is_one_object_per_line_with_its_level(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    out = io.StringIO()
    setup_logging("info", "json", out)
    emit(logging.INFO, "hello\nworld")
    emit(logging.DEBUG, "hidden")
    (line,) = out.getvalue().splitlines()
    record = json.loads(line)
    assert record["level"] == "info" and record["msg"] == "hello\nworld" and record["logger"] == "edge.test"


def test_json_under_journald_has_the_priority_before_the_object(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    out = io.StringIO()
    setup_logging("info", "json", out)
    emit(logging.WARNING, "w")
    line = out.getvalue().rstrip("\n")
    assert line.startswith("<4>{") and json.loads(line[3:])["level"] == "warning"


def test_level_and_format_change_live_and_the_error_counter_keeps_counting(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    out = io.StringIO()
    errors = setup_logging("warning", "text", out)
    emit(logging.INFO, "before")
    apply_log_config("debug", "json")
    emit(logging.DEBUG, "after")
    emit(logging.ERROR, "bad")
    lines = out.getvalue().splitlines()
    assert [json.loads(line)["msg"] for line in lines] == ["after", "bad"]
    assert errors.count == 1
    apply_log_config("error", "text")
    emit(logging.WARNING, "quiet")
    assert len(out.getvalue().splitlines()) == 2
