"""The campus/v1 JSON Schemas of docs/schemas, for tests (the product never reads docs/)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "docs" / "schemas"
KINDS = ("status", "event", "telemetry", "occupancy", "cmd", "cmd_result")


def schema_path(kind: str) -> Path:
    """The schema file of one message kind."""
    if kind not in KINDS:
        raise ValueError(f"unknown message kind {kind!r} (known: {', '.join(KINDS)})")
    return SCHEMA_DIR / f"{kind}.schema.json"


def load(kind: str) -> dict[str, Any]:
    """The parsed schema of one message kind."""
    loaded: dict[str, Any] = json.loads(schema_path(kind).read_text(encoding="utf-8"))
    return loaded


@cache
def validator(kind: str) -> Draft202012Validator:
    """A validator for one kind that also checks formats (uuid)."""
    return Draft202012Validator(load(kind), format_checker=Draft202012Validator.FORMAT_CHECKER)


def errors(kind: str, message: dict[str, Any]) -> list[str]:
    """Every violation of the kind's schema, as 'path: message' lines (empty when valid)."""
    found = sorted(validator(kind).iter_errors(message), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}" for e in found]


def validate(kind: str, message: dict[str, Any]) -> None:
    """Raise AssertionError naming the failing path when message breaks the kind's schema."""
    found = list(validator(kind).iter_errors(message))
    if found:
        worst = best_match(found)
        path = "/".join(str(p) for p in worst.absolute_path) or "<root>"
        raise AssertionError(f"{kind} message invalid at {path}: {worst.message} "
                             f"(all: {errors(kind, message)})")
