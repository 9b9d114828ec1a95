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
QUEUE_PER_DEVICE = 20
_COMMAND_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
ACTOR = "mqtt-local"


class LocalCommandTopic:
    """Service: take commands from the local broker, run them, publish each result.

    Each device has its own queue and worker, so a silent device only delays its own
    commands; commands to one device run in arrival order.
    """

    name = "local-commands"

    def __init__(self, link: MqttLink, service: CommandService, prefix: str, clock: Clock) -> None:
        self._link = link
        self._service = service
        self._prefix = prefix
        self._clock = clock
        self._queues: dict[str, asyncio.Queue[bytes]] = {}
        self.handled = 0
        # A retained command would be delivered again on every reconnect, long after its
        # command_id has aged out of the store: commands are live messages only.
        link.subscribe(f"{prefix}/device/+/cmd", self._on_message, qos=1, retained=False)

    def _queue(self, device_id: str) -> asyncio.Queue[bytes]:
        return self._queues.setdefault(device_id, asyncio.Queue(maxsize=QUEUE_PER_DEVICE))

    async def _on_message(self, topic: str, payload: bytes) -> None:
        device_id = topic[len(self._prefix) + len("/device/"):-len("/cmd")]
        # Refuse here what never needs a worker, so nothing big or unknown is queued.
        if len(payload) > MAX_PAYLOAD:
            await self._refuse(device_id, payload, f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
        elif not self._service.knows(device_id):
            await self._refuse(device_id, payload, f"unknown device {device_id!r}")
        else:
            try:
                self._queue(device_id).put_nowait(payload)
            except asyncio.QueueFull:
                await self._refuse(device_id, payload,
                                   f"gateway busy: {QUEUE_PER_DEVICE} commands already wait for this device")

    async def _refuse(self, device_id: str, payload: bytes, reason: str) -> None:
        result = await self._service.reject(_peek_command_id(payload), device_id, "", reason, ACTOR)
        await self._publish(result)

    async def run(self, ready: Callable[[], None]) -> None:
        """Run one worker per device until cancelled."""
        ready()
        async with asyncio.TaskGroup() as group:
            for device_id in self._service.device_ids():
                group.create_task(self._work(device_id))

    async def _work(self, device_id: str) -> None:
        queue = self._queue(device_id)
        while True:
            payload = await queue.get()
            parsed, reason = parse_command(device_id, payload, self._clock.now())
            if parsed is None:
                result = await self._service.reject(_peek_command_id(payload), device_id, "", reason,
                                                    ACTOR)
            else:
                result = await self._service.submit(parsed, ACTOR)
            self.handled += 1
            await self._publish(result)

    async def _publish(self, result: CommandResult) -> None:
        topic = f"{self._prefix}/device/{result.device_id}/cmd/result"
        body = json.dumps(result.as_dict(), separators=(",", ":"), ensure_ascii=False).encode()
        try:
            await self._link.publish(topic, body, qos=1)
        except MqttUnavailable:
            log.warning("command result %s not published: local broker down", result.command_id)


def _load_json(payload: bytes) -> tuple[Any, str]:
    """Decode a JSON payload; (None, reason) when it is not UTF-8 JSON."""
    try:
        return json.loads(payload.decode("utf-8")), ""
    except UnicodeDecodeError:
        return None, "payload is not UTF-8"
    except json.JSONDecodeError as err:
        return None, f"payload is not JSON: {err.msg} at position {err.pos}"
    except RecursionError:
        return None, "payload is not JSON we accept: nested too deeply"


def parse_command(device_id: str, payload: bytes, now: float) -> tuple[Command | None, str]:
    """Turn a command payload into a Command, or (None, reason) for bad input."""
    if len(payload) > MAX_PAYLOAD:
        return None, f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}"
    body, reason = _load_json(payload)
    if reason:
        return None, reason
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
    body, _ = _load_json(payload)
    value = body.get("command_id") if isinstance(body, dict) else None
    return value if isinstance(value, str) and _COMMAND_ID.match(value) else None
