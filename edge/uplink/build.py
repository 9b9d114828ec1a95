"""Assemble the uplink's services: the central broker link, the intake and the sender."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge import __version__
from edge.backoff import Backoff
from edge.bus import Bus
from edge.clock import Clock, iso_utc
from edge.commands import CommandService
from edge.config import EdgeConfig
from edge.config_uplink import UplinkConfig
from edge.disk_guard import DiskGuard
from edge.errors import MqttUnavailable
from edge.events import Envelope, SafetyEvent
from edge.mqtt import BrokerEndpoint, LinkOptions, MqttLink, StatusTopic
from edge.store import Store
from edge.supervisor import Service
from edge.uplink import contract
from edge.uplink.downlink import Downlink
from edge.uplink.intake import UplinkIntake
from edge.uplink.metrics import UplinkMetrics
from edge.uplink.sender import UplinkSender

log = logging.getLogger(__name__)

RecordEvent = Callable[[SafetyEvent], Awaitable[Envelope]]
# paho notices a silent broker after ~2 keepalives; the contract promises 1.5.
DEAD_AFTER_KEEPALIVES = 1.25


def config_version(config: EdgeConfig) -> str:
    """A short fingerprint of the running configuration (the platform can ask for it)."""
    return hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:16]


@dataclass
class Uplink:
    """The uplink's parts, as the gateway and the console see them."""

    link: MqttLink
    intake: UplinkIntake
    sender: UplinkSender
    metrics: UplinkMetrics
    topics: contract.Topics

    @property
    def services(self) -> list[Service]:
        """In start order: the link first, so the sender finds it."""
        return [self.link, self.intake, self.sender]


def endpoint_of(config: UplinkConfig, password: str | None) -> BrokerEndpoint:
    """Where the central broker is and how to authenticate."""
    host, port, use_tls = config.broker_address()
    return BrokerEndpoint(host, port, use_tls,
                          ca_file=str(config.tls_ca_file) if config.tls_ca_file else None,
                          cert_file=str(config.tls_cert_file) if config.tls_cert_file else None,
                          key_file=str(config.tls_key_file) if config.tls_key_file else None,
                          username=config.username, password=password)


class CommandTopic:
    """Runs each `cmd` message through the downlink on its own task and publishes its result."""

    MAX_RUNNING = 8  # a slow device command must not hold up the next one

    def __init__(self, downlink: Downlink, link: MqttLink, topics: contract.Topics, clock: Clock,
                 site_id: str, gateway_id: str) -> None:
        self._downlink = downlink
        self._link = link
        self._topics = topics
        self._clock = clock
        self._ids = (site_id, gateway_id)
        self._slots = asyncio.Semaphore(self.MAX_RUNNING)
        self._running: set[asyncio.Task[None]] = set()
        link.subscribe(topics.of("cmd"), self.on_message)

    async def on_message(self, topic: str, payload: bytes) -> None:
        """Start handling one command; the link's message loop goes on at once."""
        task = asyncio.create_task(self._handle(payload))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _handle(self, payload: bytes) -> None:
        async with self._slots:
            result = await self._downlink.handle(payload)
        message = contract.cmd_result_message(result, *self._ids, self._clock.now())
        try:
            await self._link.publish(self._topics.of("cmd/result"), contract.dumps(message).encode(), qos=1)
        except MqttUnavailable:
            # The outcome is stored with its command_id: a re-sent command gets it again.
            log.warning("uplink: result of command %s not published (broker gone)", result.get("command_id"))


def build_uplink(config: EdgeConfig, store: Store, bus: Bus, clock: Clock, record_event: RecordEvent,
                 password: str | None, commands: CommandService,
                 platform_key: Ed25519PublicKey | None = None, guard: DiskGuard | None = None) -> Uplink:
    """The uplink for config.uplink (which must be set)."""
    cfg = config.uplink
    assert cfg is not None, "only called with an uplink configured"
    topics = contract.Topics(cfg.topic_root, config.site_id, config.gateway_id)
    since = iso_utc(clock.now())
    version = config_version(config)

    def online() -> bytes:
        return contract.dumps(contract.status_message(
            "online", config.site_id, config.gateway_id, version=__version__, since=since,
            config_version=version, sent_at=round(time.time(), 3))).encode()

    status = StatusTopic(topics.of("status"), online, contract.dumps(contract.status_message(
        "offline", config.site_id, config.gateway_id)).encode())
    endpoint = endpoint_of(cfg, password)
    link = MqttLink(
        "mqtt-uplink", lambda: endpoint, cfg.client_id or f"edge-{config.site_id}-{config.gateway_id}"[:64],
        status, keepalive_s=cfg.keepalive_s, backoff=Backoff(cfg.reconnect_initial_s, cfg.reconnect_max_s),
        options=LinkOptions(protocol=5 if cfg.protocol == "5" else 4, max_inflight=cfg.inflight,
                            dead_after_keepalives=DEAD_AFTER_KEEPALIVES))
    metrics = UplinkMetrics()
    intake = UplinkIntake(cfg, store, bus, clock, metrics, record_event, guard=guard,
                          device_rooms={d.id: d.room_id for d in config.devices})
    sender = UplinkSender(cfg, config.site_id, config.gateway_id, store, bus, link, clock, metrics)
    if cfg.commands.enabled:
        assert platform_key is not None, "the gateway loads the key when commands are enabled"
        downlink = Downlink(cfg.commands, platform_key, commands, clock,
                            {d.id for d in config.devices}, store=store, config_version=version,
                            resend_status=link.publish_status)
        CommandTopic(downlink, link, topics, clock, config.site_id, config.gateway_id)
    return Uplink(link, intake, sender, metrics, topics)
