"""Signed commands from the central platform: check each `cmd` message, run it once, return its result.

Wire format of a `cmd` message (a UTF-8 JSON object of at most commands.max_payload_bytes bytes):

    {"command_id": str (1-128 chars, the idempotency key: a seen id never runs again),
     "device_id": str (a configured device id, or "gateway" for the gateway itself),
     "action": str, "args": object, "issued_at": float (unix s), "expires_at": float (unix s),
     "signature": str}

signature is the standard, padded base64 of the Ed25519 signature over the canonical JSON of the
object without the "signature" key: json.dumps(obj, sort_keys=True, separators=(",", ":"),
ensure_ascii=False).encode("utf-8") (edge/uplink/signature.py). An optional "schema": "campus/v1/cmd"
may be present (and is signed like every key); any other key is refused.

Checks, in order; each refusal is a result with status "rejected", audited with actor "platform":
size (not parsed when too big), UTF-8 JSON object, fields and types (expires_at > issued_at),
commands enabled, signature, device configured, allowlist, issued_at at most clock_skew_s in the
future, expiry, then CommandService.submit (args, at-most-once, audit). An expired message whose
command_id was seen before gets its earlier result again (duplicate true), so a platform re-sending
the same signed message always learns the outcome; an expired unseen id is recorded as rejected.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge.clock import Clock
from edge.command_args import Args
from edge.commands.service import CommandResult, CommandService
from edge.config_uplink import AllowRule, CommandsConfig
from edge.errors import CommandFailed
from edge.events import Command
from edge.store import Store
from edge.uplink.contract import schema
from edge.uplink.signature import SIGNATURE_KEY, verify

ACTOR = "platform"
GATEWAY = "gateway"  # the pseudo-device of gateway-level commands; named explicitly in the allowlist
_MAX_ID = 128
_LENGTHS = {"command_id": _MAX_ID, "device_id": _MAX_ID, "action": 64}
_KEYS = frozenset({*_LENGTHS, "args", "issued_at", "expires_at", SIGNATURE_KEY, "schema"})


class GatewayCommands:
    """Executor of the gateway pseudo-device: ping, config_version, resend_status."""

    def __init__(self, clock: Clock, config_version: str,
                 resend_status: Callable[[], Awaitable[None]]) -> None:
        self._clock = clock
        self._config_version = config_version
        self._resend_status = resend_status

    async def __call__(self, action: str, args: Args) -> dict[str, Any]:
        """Carry out one validated gateway action."""
        if action == "ping":
            return {"pong": True, "time": self._clock.now()}
        if action == "config_version":
            return {"config_version": self._config_version}
        if action == "resend_status":
            await self._resend_status()
            return {"resent": True}
        raise CommandFailed("failed", f"the gateway cannot {action!r}")  # ACTIONS and this disagree


def allowed(rules: Iterable[AllowRule], device_id: str, action: str) -> bool:
    """True if a rule names the device (or '*', which never covers the gateway) and the action."""
    for rule in rules:
        device_ok = device_id in rule.devices or (device_id != GATEWAY and "*" in rule.devices)
        if device_ok and (action in rule.actions or "*" in rule.actions):
            return True
    return False


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def parse(payload: bytes) -> tuple[dict[str, Any] | None, str]:
    """Decode a cmd payload into a JSON object, or None and why not."""
    try:
        message = json.loads(payload.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        return None, "payload is not UTF-8"
    except (ValueError, RecursionError) as err:
        return None, f"payload is not JSON: {err}"[:200]
    if not isinstance(message, dict):
        return None, f"payload must be a JSON object, not {type(message).__name__}"
    return message, ""


def field_problem(message: dict[str, Any]) -> str:
    """The first missing or ill-typed field of a cmd message, or ''."""
    unknown = sorted(set(message) - _KEYS)
    if unknown:
        return f"unknown keys: {', '.join(unknown)[:200]}"
    if message.get("schema", schema("cmd")) != schema("cmd"):
        return f"schema must be {schema('cmd')!r}"
    for key, longest in _LENGTHS.items():
        value = message.get(key)
        if not isinstance(value, str) or not 1 <= len(value) <= longest:
            return f"{key} must be a string of 1-{longest} characters"
    if not isinstance(message.get("args"), dict):
        return "args must be a JSON object"
    for key in ("issued_at", "expires_at"):
        value = message.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return f"{key} must be a number (unix seconds)"
    if message["expires_at"] <= message["issued_at"]:
        return "expires_at must be after issued_at"
    return ""


def _peek(message: dict[str, Any] | None, key: str) -> str:
    # What a refusal echoes: only a plausible id, so a huge or odd value is never repeated back.
    value = message.get(key) if message else None
    return value if isinstance(value, str) and len(value) <= _MAX_ID else ""


class Downlink:
    """The `cmd` topic's handler: verify, check, run once through the CommandService."""

    def __init__(self, config: CommandsConfig, public_key: Ed25519PublicKey, commands: CommandService,
                 clock: Clock, device_ids: set[str], *, store: Store, config_version: str,
                 resend_status: Callable[[], Awaitable[None]]) -> None:
        self._config = config
        self._key = public_key
        self._commands = commands
        self._clock = clock
        self._device_ids = frozenset(device_ids)
        self._store = store
        self.gateway = GatewayCommands(clock, config_version, resend_status)
        commands.register(GATEWAY, GATEWAY, self.gateway)

    async def handle(self, payload: bytes) -> dict[str, Any]:
        """Check and run one cmd payload; return the result to publish on cmd/result."""
        limit = self._config.max_payload_bytes
        if len(payload) > limit:
            return await self._reject(None, f"payload of {len(payload)} bytes exceeds {limit}")
        message, reason = parse(payload)
        if message is None:
            return await self._reject(None, reason)
        reason = field_problem(message) or self._refusal(message)
        if reason:
            return await self._reject(message, reason)
        command = Command(message["command_id"], message["device_id"], message["action"],
                          message["args"], issued_at=float(message["issued_at"]),
                          expires_at=float(message["expires_at"]))
        if command.expires_at is not None and command.expires_at < self._clock.now():
            return (await self._expired(command)).as_dict()
        return (await self._commands.submit(command, ACTOR)).as_dict()

    def _refusal(self, message: dict[str, Any]) -> str:
        # Checks on a well-formed message up to (not including) expiry; '' when it passes.
        if not self._config.enabled:
            return "commands from the platform are disabled on this gateway"
        if SIGNATURE_KEY not in message:
            return "missing signature"
        if not verify(self._key, message):
            return "bad signature"
        device_id, action = message["device_id"], message["action"]
        if device_id != GATEWAY and device_id not in self._device_ids:
            return f"unknown device {device_id!r}"
        if not allowed(self._config.allow, device_id, action):
            return f"action {action!r} on {device_id!r} is not allowed by the commands allowlist"
        ahead, skew = message["issued_at"] - self._clock.now(), self._config.clock_skew_s
        if ahead > skew:
            return f"issued_at is {ahead:.0f}s in the future (allowed clock skew {skew:g}s)"
        return ""

    async def _expired(self, command: Command) -> CommandResult:
        # A seen command_id gets its earlier result even when expired (the platform re-sends
        # the same signed message until it learns the outcome). An unseen one is claimed and
        # recorded as rejected, so its id is spent too and a re-send gets the same answer.
        earlier = await self._store.claim_command(command.command_id, command.device_id, command.action,
                                                  command.args, ACTOR)
        if earlier is None:
            age = self._clock.now() - (command.expires_at or 0.0)
            result = await self._commands.reject(command.command_id, command.device_id, command.action,
                                                 f"command expired {age:.0f}s ago", ACTOR)
            await self._store.finish_command(command.command_id, result.status, result.as_dict())
            return result
        if earlier["device_id"] != command.device_id:
            return await self._commands.reject(
                command.command_id, command.device_id, command.action,
                f"command_id already used for device {earlier['device_id']!r}", ACTOR)
        stored = earlier.get("result")
        if isinstance(stored, dict):
            return CommandResult(**{**stored, "duplicate": True})
        return CommandResult(command.command_id, command.device_id, command.action, str(earlier["status"]),
                             "already received; no result recorded yet (still running, or the gateway "
                             "stopped before it finished)", duplicate=True, finished_at=self._clock.now())

    async def _reject(self, message: dict[str, Any] | None, reason: str) -> dict[str, Any]:
        result = await self._commands.reject(_peek(message, "command_id"), _peek(message, "device_id"),
                                             _peek(message, "action"), reason, ACTOR)
        return result.as_dict()
