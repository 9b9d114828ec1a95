"""Sensor nodes on serial ports: frames become readings, status and safety events; commands go down."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from edge.bus import Bus
from edge.clock import Clock
from edge.command_args import Args, IrArgs, LightArgs, RelayArgs, ReportIntervalArgs
from edge.config_devices import NodeDeviceConfig
from edge.errors import CommandFailed, StoreError
from edge.events import Envelope, Reading, SafetyEvent, Severity
from edge.sources.availability import Availability
from firmware_bridge.errors import CommandTimeout, TransportError
from firmware_bridge.node_link import NodeLink, doubling_with_jitter
from firmware_bridge.node_protocol import (
    READING_KINDS,
    Ack,
    Command,
    CommandAction,
    Event,
    EventCode,
    Frame,
    Hello,
    ReadingKind,
    Telemetry,
)
from firmware_bridge.streams import ByteStream, SerialStream, TcpStream

log = logging.getLogger(__name__)

RecordEvent = Callable[[SafetyEvent], Awaitable[Envelope]]

# What an alarm input means when it goes active: event type and severity.
ALARM_EVENTS: dict[ReadingKind, tuple[str, Severity]] = {
    ReadingKind.PANIC_BUTTON: ("panic_button", Severity.CRITICAL),
    ReadingKind.SMOKE_ALARM: ("smoke_alarm", Severity.CRITICAL),
    ReadingKind.DOOR_OPEN: ("door_open", Severity.WARNING),
    ReadingKind.MOTION: ("motion", Severity.INFO),
}


def event_for(message: Event) -> tuple[str, Severity]:
    """Map a node EVENT to a safety event type and severity."""
    subject = message.subject
    if message.code is EventCode.ALARM_CLEARED:
        name = READING_KINDS[subject].metric if subject else "alarm"
        return f"{name}_cleared", Severity.INFO
    if subject in ALARM_EVENTS:
        return ALARM_EVENTS[subject]
    if message.code is EventCode.BUTTON_PRESSED:
        return "button_pressed", Severity.INFO
    return "alarm_raised", Severity.WARNING


def firmware_command(args: Args) -> Command:
    """Turn validated action arguments into a node protocol COMMAND."""
    if isinstance(args, RelayArgs):
        return Command(CommandAction.RELAY, args.channel, int(args.state == "on"))
    if isinstance(args, LightArgs):
        return Command(CommandAction.LIGHT_LEVEL, args.channel, args.level)
    if isinstance(args, IrArgs):
        return Command(CommandAction.IR_CODE, args.channel, 0, bytes.fromhex(args.code))
    if isinstance(args, ReportIntervalArgs):
        return Command(CommandAction.REPORT_INTERVAL, 0, args.seconds)
    raise CommandFailed("failed", f"no node command for {type(args).__name__}")


class NodeSource:
    """Service: one node's port kept open, its frames turned into bus events."""

    def __init__(self, config: NodeDeviceConfig, bus: Bus, clock: Clock, record_event: RecordEvent,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.name = f"node:{config.id}"
        self._bus = bus
        self._clock = clock
        self._record_event = record_event
        self._monotonic = monotonic
        self.availability = Availability(config.id, config.room_id, bus, clock)
        self.link = NodeLink(
            config.port, self._on_frame, opener=self._open,
            backoff=lambda n: doubling_with_jitter(n, 0.25, config.reopen_max_s),
            command_timeout_s=config.command_timeout_s,
        )
        self.hello: Hello | None = None
        self._last_frame = 0.0
        # (frame seq, event): unbounded, events never drop; the node resends until ACKed anyway.
        self._events: asyncio.Queue[tuple[int, SafetyEvent]] = asyncio.Queue()
        self.readings = 0
        self.events = 0

    async def _open(self, port: str) -> ByteStream:
        if port.startswith("tcp://"):
            return await TcpStream.open(port.removeprefix("tcp://"))
        return await SerialStream.open(port, self.config.baudrate)

    def _on_frame(self, frame: Frame) -> None:
        self._last_frame = self._monotonic()
        message = frame.message
        if isinstance(message, Hello):
            self.hello = message
            self.availability.seen(f"{message.node_id} firmware {message.firmware}")
            return
        self.availability.seen("frames arriving")
        now = self._clock.now()
        if isinstance(message, Telemetry):
            for kind, value in message.readings:
                spec = READING_KINDS[kind]
                self._bus.publish(Reading(self.config.id, spec.metric, round(value, spec.decimals),
                                          spec.unit, now, self.config.room_id))
                self.readings += 1
        elif isinstance(message, Event):
            event_type, severity = event_for(message)
            data: dict[str, Any] = {"device_id": self.config.id, "code": message.code.name.lower()}
            if message.subject is not None:
                data["input"] = READING_KINDS[message.subject].metric
            self._events.put_nowait((frame.seq, SafetyEvent(
                event_type, severity, now, f"device:{self.config.id}", self.config.room_id, data)))

    async def run(self, ready: Callable[[], None]) -> None:
        """Keep the port open, watch liveness and persist events until cancelled."""
        ready()
        async with asyncio.TaskGroup() as group:
            group.create_task(self.link.run())
            group.create_task(self._watch_liveness())
            group.create_task(self._persist_events())

    async def _persist_events(self) -> None:
        while True:
            seq, event = await self._events.get()
            # Stored (with its seq) before anyone hears of it; record_event publishes after.
            # Only a stored event is ACKed: until then the node keeps resending it.
            attempt = 0
            while True:
                try:
                    await self._record_event(event)
                    break
                except StoreError as err:
                    attempt += 1
                    log.error("%s: cannot store %s event (attempt %d), retrying: %s", self.name,
                              event.type, attempt, err)
                    await asyncio.sleep(min(5.0, 0.1 * 2**attempt))
            self.events += 1
            await self.link.ack(seq)

    async def _watch_liveness(self) -> None:
        limit = self.config.heartbeat_s * self.config.missed_heartbeats
        opened_at: float | None = None
        while True:
            await asyncio.sleep(min(0.5, self.config.heartbeat_s / 4))
            if self.link.state in ("absent", "lost"):
                opened_at = None
                self.availability.lost(f"port {self.link.state}")
                continue
            if opened_at is None:
                opened_at = self._monotonic()
            # A node that never spoke since its port opened is as silent as one that stopped.
            last = max(self._last_frame, opened_at)
            if self.availability.online is not False and self._monotonic() - last > limit:
                self.availability.lost(f"no frame for {limit:g}s")

    async def execute(self, action: str, args: Args) -> dict[str, Any]:
        """Send a command (resent with its seq on silence); CommandFailed if refused or gone."""
        command = firmware_command(args)
        try:
            reply = await self.link.send(command, retries=self.config.command_retries)
        except CommandTimeout as err:
            raise CommandFailed("timeout", f"no ACK after {err.attempts} attempts") from err
        except TransportError as err:
            raise CommandFailed("failed", f"node unreachable: {err}") from err
        if isinstance(reply, Ack):
            return {"seq": reply.seq}
        raise CommandFailed("failed", f"node refused: {reply.reason.name.lower()}")
