"""The uplink sender: outbox rows to the central broker, marked delivered only after PUBACK."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from edge.bus import Bus, DropPolicy
from edge.clock import Clock, SteadyWall
from edge.config_uplink import CLASSES, UplinkConfig
from edge.errors import MqttUnavailable
from edge.events import Envelope
from edge.mqtt import MqttLink, Outgoing
from edge.store import Store
from edge.store.outbox import OutboxRow
from edge.uplink import contract
from edge.uplink.metrics import UplinkMetrics

log = logging.getLogger(__name__)

IDLE_POLL_S = 1.0  # occupancy and telemetry rows are written by the intake without a wake-up
ACK_TIMEOUT_S = 15.0


@dataclass
class ReplayBucket:
    """Token bucket for historical (replayed) messages, so live ones are never queued behind them."""

    rate: float
    burst: float
    tokens: float = 0.0
    at: float = 0.0

    def available(self, now: float) -> int:
        """Whole tokens there now (refilled for the time since the last call)."""
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        return int(self.tokens)

    def take(self, wanted: int, now: float) -> int:
        """Up to wanted tokens available now (0 when the bucket is empty)."""
        granted = min(wanted, self.available(now))
        self.tokens -= granted
        return granted

    def wait_s(self) -> float:
        """How long until one token is there."""
        return max(0.0, (1.0 - self.tokens) / self.rate)


class UplinkSender:
    """Service: send undelivered outbox rows, live ones first, then the backlog rate-limited."""

    name = "uplink-sender"

    def __init__(self, config: UplinkConfig, site_id: str, gateway_id: str, store: Store, bus: Bus,
                 link: MqttLink, clock: Clock, metrics: UplinkMetrics) -> None:
        self.config = config
        self.site_id = site_id
        self.gateway_id = gateway_id
        self.topics = contract.Topics(config.topic_root, site_id, gateway_id)
        self._store = store
        self._link = link
        self._clock = clock
        self.metrics = metrics
        self._steady = SteadyWall(clock)  # message expiry from the outbox TTL, immune to clock steps
        self._bucket = ReplayBucket(config.replay_rate, max(1.0, float(config.inflight)))
        # Safety events wake the sender at once; other classes are picked up by the idle poll.
        self._wake = bus.subscribe("uplink-sender", (Envelope,), maxsize=1, policy=DropPolicy.SIGNAL)

    async def run(self, ready: Callable[[], None]) -> None:
        """Send until cancelled; a lost connection only pauses it (the rows stay in the outbox)."""
        ready()
        while True:
            self.metrics.connected = self._link.connected
            if not self._link.connected:
                await asyncio.sleep(0.2)
                continue
            try:
                sent = await self._send_next()
            except MqttUnavailable as err:
                log.debug("uplink: send interrupted (%s); rows stay queued", err)
                await asyncio.sleep(0.2)
                continue
            if not sent:
                await self._idle()

    async def _idle(self) -> None:
        self._wake.take(1000)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(IDLE_POLL_S):
                await self._wake.wait()

    async def _send_next(self) -> int:
        """Send one batch: live rows of the most urgent class, else rate-limited backlog."""
        since = self._link.connected_since
        if since is None:
            return 0
        limit = self.config.inflight
        for msg_class in CLASSES:
            rows = await self._store.outbox_pending(msg_class, limit, now=self._steady.now(),
                                                    created_from=since)
            if rows:
                return await self._send(rows, historical=False)
        for msg_class in CLASSES:
            # Read no more backlog than the bucket lets out now (one row, to see if there is any).
            allowed = self._bucket.available(time.monotonic())
            rows = await self._store.outbox_pending(msg_class, max(1, min(limit, allowed)),
                                                    now=self._steady.now(), created_before=since)
            if not rows:
                continue
            granted = self._bucket.take(len(rows), time.monotonic())
            if granted == 0:
                await asyncio.sleep(self._bucket.wait_s())
                return 1  # come back through the live check first
            return await self._send(rows[:granted], historical=True)
        return 0

    async def _send(self, rows: list[OutboxRow], historical: bool) -> int:
        now = self._clock.now()
        steady = self._steady.now()
        messages: list[Outgoing] = []
        for row in rows:
            text = contract.finish_text(row.payload, row.topic, self.site_id, self.gateway_id, now,
                                        historical)
            expiry = row.expires_at - steady if row.expires_at is not None else None
            if expiry is not None and expiry <= 0:
                expiry = 1.0  # about to expire: the broker may still hand it on
            messages.append((self.topics.of(row.topic), text.encode(), expiry))
        await self._link.publish_confirmed(messages, ACK_TIMEOUT_S)
        # Acknowledged by the broker: only now may the rows go (a crash before this line
        # sends them again: at-least-once, deduplicated on event_id / message_id upstream).
        await self._store.outbox_delivered([row.id for row in rows], self._clock.now())
        by_class: dict[str, int] = {}
        for row in rows:
            by_class[row.msg_class] = by_class.get(row.msg_class, 0) + 1
        for msg_class, count in by_class.items():
            self.metrics.record_delivery(msg_class, count, historical, self._clock.now())
        return len(rows)
