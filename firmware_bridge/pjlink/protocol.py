"""PJLink class 1 wire format without I/O: commands out, greetings and replies in."""

from __future__ import annotations

import hashlib
import re

from firmware_bridge.errors import (
    PJLINK_ERROR_CODES,
    PjlinkAuthError,
    PjlinkCommandError,
    PjlinkProtocolError,
)

PORT = 4352
TERMINATOR = b"\r"
MAX_LINE = 136  # the longest class 1 reply, terminator included
MAX_PARAM = 128
AUTH_FAILED = b"PJLINK ERRA"

POWER_STATES = {"0": "off", "1": "on", "2": "cooling", "3": "warming"}
POWER_CODES = {state: code for code, state in POWER_STATES.items()}
ERROR_NAMES = ("fan", "lamp", "temperature", "cover", "filter", "other")  # the order of ERST digits
ERROR_LEVELS = {"0": "ok", "1": "warning", "2": "error"}
ERROR_LEVEL_CODES = {level: code for code, level in ERROR_LEVELS.items()}

_BODY = re.compile(r"[A-Z0-9]{4}", re.ASCII)
# Class 1 inputs: a type digit (1 RGB, 2 video, 3 digital, 4 storage, 5 network) and a number 1-9.
_INPUT = re.compile(r"[1-5][1-9]", re.ASCII)
# One to eight lamps, each "hours on/off"; the spec gives hours at most five digits.
_LAMPS = re.compile(r"[0-9]{1,5} [01]( [0-9]{1,5} [01]){0,7}", re.ASCII)
# The spec's random is 8 characters; any short printable token is accepted, since it is only hashed.
_GREETING_AUTH = re.compile(rb"PJLINK 1 ([!-~]{1,32})")


def auth_digest(random: str, password: str) -> str:
    """The 32 hex digits that prefix the first command of an authenticated connection."""
    # MD5 is what the protocol prescribes; usedforsecurity=False keeps it usable on FIPS hosts.
    return hashlib.md5((random + password).encode("utf-8"), usedforsecurity=False).hexdigest()


def is_input_code(code: str) -> bool:
    """Whether code is a class 1 input such as '11' (RGB 1) or '31' (digital 1)."""
    return _INPUT.fullmatch(code) is not None


def encode_command(body: str, param: str) -> bytes:
    """One class 1 command line, e.g. ('POWR', '1') -> b'%1POWR 1\\r'; ValueError if malformed."""
    if _BODY.fullmatch(body) is None:
        raise ValueError(f"PJLink command must be four upper-case letters or digits: {body!r}")
    if not (param.isascii() and param.isprintable()) or not 0 < len(param) <= MAX_PARAM:
        raise ValueError(f"PJLink parameter must be 1-{MAX_PARAM} printable ASCII characters: {param!r}")
    return f"%1{body} {param}".encode("ascii") + TERMINATOR


def _strip(line: bytes) -> bytes:
    # Some projectors end lines with CR LF; the LF then leads the next line.
    return line.strip(b"\r\n")


def parse_greeting(line: bytes) -> str | None:
    """The random of a 'PJLINK 1 <random>' greeting, None for 'PJLINK 0' (no authentication)."""
    text = _strip(line)
    if text == b"PJLINK 0":
        return None
    if text == AUTH_FAILED:
        raise PjlinkAuthError("projector refused the connection (PJLINK ERRA)")
    match = _GREETING_AUTH.fullmatch(text)
    if match is None:
        raise PjlinkProtocolError(f"not a PJLink greeting: {line[:40]!r}")
    return match.group(1).decode("ascii")


def parse_reply(line: bytes) -> tuple[str, str]:
    """Split a reply line into (body, data); PjlinkError subclasses for ERRn, ERRA and junk."""
    text = _strip(line)
    if text == AUTH_FAILED:
        raise PjlinkAuthError("projector rejected the password (PJLINK ERRA)")
    if len(text) >= MAX_LINE:
        raise PjlinkProtocolError(f"reply longer than {MAX_LINE} bytes: {line[:40]!r}")
    if not text.startswith(b"%1") or text[6:7] != b"=":
        raise PjlinkProtocolError(f"not a PJLink class 1 reply: {line[:40]!r}")
    body = text[2:6].decode("ascii", errors="replace")
    if _BODY.fullmatch(body) is None:
        raise PjlinkProtocolError(f"bad command in reply: {line[:40]!r}")
    raw = text[7:]
    if any(byte < 0x20 or byte == 0x7F for byte in raw):
        raise PjlinkProtocolError(f"control characters in reply: {line[:40]!r}")
    # Names and model strings are free text; a projector using a legacy code page must not fail.
    data = raw.decode("utf-8", errors="replace")
    if data in PJLINK_ERROR_CODES:
        raise PjlinkCommandError(body, data)
    return body, data


def parse_power(data: str) -> str:
    """The POWR ? answer as 'off', 'on', 'cooling' or 'warming'."""
    try:
        return POWER_STATES[data]
    except KeyError:
        raise PjlinkProtocolError(f"unknown power state {data!r}") from None


def parse_input(data: str) -> str:
    """The INPT ? answer, checked to be a class 1 input code."""
    if not is_input_code(data):
        raise PjlinkProtocolError(f"unknown input {data!r}")
    return data


def parse_lamps(data: str) -> list[tuple[int, bool]]:
    """The LAMP ? answer as [(hours, lit), ...], one pair per lamp."""
    if _LAMPS.fullmatch(data) is None:
        raise PjlinkProtocolError(f"malformed lamp status {data!r}")
    fields = data.split(" ")
    return [(int(hours), lit == "1") for hours, lit in zip(fields[::2], fields[1::2], strict=True)]


def parse_errors(data: str) -> dict[str, str]:
    """The ERST ? answer as {fan, lamp, temperature, cover, filter, other: ok/warning/error}."""
    if len(data) != len(ERROR_NAMES) or any(digit not in ERROR_LEVELS for digit in data):
        raise PjlinkProtocolError(f"malformed error status {data!r}")
    return {name: ERROR_LEVELS[digit] for name, digit in zip(ERROR_NAMES, data, strict=True)}
