"""The local command topic: `{prefix}/device/<id>/cmd` in, `.../cmd/result` out."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable
from typing import Any

from edge.clock import Clock
from edge.commands.service import CommandResult, CommandService
from edge.errors import MqttUnavailable
from edge.events import Command
from edge.mqtt import MqttLink

log = logging.getLogger(__name__)

MAX_PAYLOAD = 16 * 1024  # a command is a few hundred bytes; anything huge is refused unread
_COMMAND_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class LocalCommandTopic:
    """Service: take commands from the local broker, run them, publish each result."""

    name = "local-commands"

    def __init__(self, link: MqttLink, service: CommandService, prefix: str, clock: Clock) -> None:
        self._link = link
        self._service = service
        self._prefix = prefix
        self._clock = clock
        # The MQTT handler only queues: waiting for an ACK must not hold up other messages.
        self._queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(maxsize=100)
        self.rejected_full = 0
        self.handled = 0
        link.subscribe(f"{prefix}/device/+/cmd", self._on_message, qos=1)

    async def _on_message(self, topic: str, payload: bytes) -> None:
        try:
            self._queue.put_nowait((topic, payload))
        except asyncio.QueueFull:
            self.rejected_full += 1
            raise ValueError("command queue full; command dropped") from None

    async def run(self, ready: Callable[[], None]) -> None:
        """Handle queued commands one by one until cancelled (devices serialise per id anyway)."""
        ready()
        while True:
            topic, payload = await self._queue.get()
            device_id = topic[len(self._prefix) + len("/device/"):-len("/cmd")]
            result = await self._handle(device_id, payload)
            self.handled += 1
            await self._publish(result)

    async def _handle(self, device_id: str, payload: bytes) -> CommandResult:
        parsed, reason = parse_command(device_id, payload, self._clock.now())
        if parsed is None:
            command_id = _peek_command_id(payload)
            return await self._service.reject(command_id, device_id, "", reason, "mqtt-local")
        return await self._service.submit(parsed, "mqtt-local")

    async def _publish(self, result: CommandResult) -> None:
        topic = f"{self._prefix}/device/{result.device_id}/cmd/result"
        body = json.dumps(result.as_dict(), separators=(",", ":"), ensure_ascii=False).encode()
        try:
            await self._link.publish(topic, body, qos=1)
        except MqttUnavailable:
            log.warning("command result %s not published: local broker down", result.command_id)


def parse_command(device_id: str, payload: bytes, now: float) -> tuple[Command | None, str]:
    """Turn a command payload into a Command, or (None, reason) for bad input."""
    if len(payload) > MAX_PAYLOAD:
        return None, f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}"
    try:
        body: Any = json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError:
        return None, "payload is not UTF-8"
    except json.JSONDecodeError as err:
        return None, f"payload is not JSON: {err.msg} at position {err.pos}"
    if not isinstance(body, dict):
        return None, "payload must be a JSON object"
    unknown = set(body) - {"command_id", "action", "args"}
    if unknown:
        return None, f"unknown keys: {', '.join(sorted(unknown))}"
    command_id, action, args = body.get("command_id"), body.get("action"), body.get("args", {})
    if not isinstance(command_id, str) or not _COMMAND_ID.match(command_id):
        return None, "command_id must be a string of 1-64 letters, digits, '_', '.', ':' or '-'"
    if not isinstance(action, str) or not action:
        return None, "action must be a non-empty string"
    if not isinstance(args, dict):
        return None, "args must be a JSON object"
    return Command(command_id, device_id, action, args, issued_at=now), ""


def _peek_command_id(payload: bytes) -> str | None:
    """Best effort: the command_id of a rejected payload, so the sender can match the result."""
    if len(payload) > MAX_PAYLOAD:
        return None
    try:
        body = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    value = body.get("command_id") if isinstance(body, dict) else None
    return value if isinstance(value, str) and _COMMAND_ID.match(value) else None
