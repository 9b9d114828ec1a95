"""Composition root: build the services, run them, handle signals, shut down cleanly."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from collections.abc import Callable

from edge import __version__
from edge.alerts.service import AlertService
from edge.backoff import Backoff
from edge.bus import Bus
from edge.clock import Clock, SystemClock, iso_utc
from edge.commands import CommandService
from edge.commands.local_topic import LocalCommandTopic
from edge.config import EdgeConfig
from edge.config_devices import PjlinkDeviceConfig
from edge.console import ConsoleServer, create_app
from edge.device_services import build_device_services
from edge.embedded_broker import HOST as EMBEDDED_HOST
from edge.embedded_broker import EmbeddedBroker
from edge.errors import KeyUnusable, RestartBudgetExhausted, SecretUnavailable
from edge.events import Envelope, SafetyEvent
from edge.ha_discovery import HomeAssistantDiscovery
from edge.health import HealthMonitor
from edge.local_publisher import LocalPublisher
from edge.mqtt import BrokerEndpoint, MqttLink, StatusTopic
from edge.recorder import Recorder
from edge.rooms_view import RoomsView
from edge.sdnotify import WatchdogPinger, notify, watchdog_interval
from edge.sources.cameras import CameraService
from edge.store import Store, prepare_data_dir
from edge.supervisor import RestartPolicy, Service, Supervisor
from edge.uplink.build import Uplink, build_uplink
from edge.uplink.signature import load_public_key
from edge.vision.models import VisionModels
from edge.vision.snapshots import SnapshotStore

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2
EXIT_RESTART_BUDGET = 3


class Gateway:
    """One running gateway: its store, bus, services and supervisor."""

    def __init__(self, config: EdgeConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.bus = Bus()
        self.store: Store | None = None
        self.supervisor: Supervisor | None = None
        self.broker: EmbeddedBroker | None = None
        self.link: MqttLink | None = None
        self.recorder: Recorder | None = None
        self.health: HealthMonitor | None = None
        self.rooms: RoomsView | None = None
        self.commands: CommandService | None = None
        self.services: list[Service] = []
        self.cameras: list[CameraService] = []
        self.alerts: AlertService | None = None
        self.console: ConsoleServer | None = None
        self.vision: VisionModels | None = None
        self.snapshots: SnapshotStore | None = None
        self.uplink: Uplink | None = None
        self.ready_at: float | None = None
        self.devices_online_at_stop = 0
        # Read secrets now, before the loop runs: fail fast (exit 2), never block the loop.
        self._local_password = config.mqtt.local.resolve_password("mqtt.local")
        self._device_passwords = {
            dev.id: dev.resolve_password(f"devices[{i}] ({dev.id})")
            for i, dev in enumerate(config.devices) if isinstance(dev, PjlinkDeviceConfig)
        }
        self._uplink_password = config.uplink.resolve_password("uplink") if config.uplink else None
        self._platform_key = None
        if config.uplink is not None and config.uplink.commands.enabled:
            assert config.uplink.commands.public_key_file is not None, "checked by the config"
            try:
                self._platform_key = load_public_key(config.uplink.commands.public_key_file)
            except KeyUnusable as err:  # like a missing secret: exit 2, the installer fixes the file
                raise SecretUnavailable("uplink.commands.public_key_file", str(err)) from err
        self._camera_passwords = {
            cam.id: cam.resolve_password(f"cameras[{i}] ({cam.id})")
            for i, cam in enumerate(config.cameras) if cam.enabled
        }

    def _endpoint_factory(self) -> Callable[[], BrokerEndpoint]:
        local = self.config.mqtt.local
        if local.url == "embedded":
            broker = self.broker

            def embedded() -> BrokerEndpoint:
                assert broker is not None and broker.port is not None, "broker starts first"
                return BrokerEndpoint(EMBEDDED_HOST, broker.port)

            return embedded
        host, port, use_tls = local.broker_address()
        tls = local.tls
        endpoint = BrokerEndpoint(
            host, port, use_tls,
            ca_file=str(tls.ca_file) if tls and tls.ca_file else None,
            cert_file=str(tls.cert_file) if tls and tls.cert_file else None,
            key_file=str(tls.key_file) if tls and tls.key_file else None,
            username=local.username,
            password=self._local_password,
        )
        return lambda: endpoint

    def _status_topic(self) -> StatusTopic:
        ident = {"site_id": self.config.site_id, "gateway_id": self.config.gateway_id}
        since = iso_utc(self.clock.now())

        def online() -> bytes:
            return json.dumps({"state": "online", **ident, "version": __version__,
                               "since": since}).encode()

        return StatusTopic(
            topic=f"{self.config.local_topic_prefix()}/status",
            online=online,
            offline=json.dumps({"state": "offline", **ident}).encode(),
        )

    def build_services(self, store: Store) -> list[Service]:
        """Create every service in start order: sinks first, then sources."""
        cfg = self.config
        services: list[Service] = []
        if cfg.mqtt.local.url == "embedded":
            self.broker = EmbeddedBroker(cfg.mqtt.local.embedded_port)
            services.append(self.broker)
        self.link = MqttLink(
            "mqtt-local",
            self._endpoint_factory(),
            cfg.mqtt.local.client_id or f"edge-{cfg.gateway_id}",
            self._status_topic(),
            keepalive_s=cfg.mqtt.local.keepalive_s,
            backoff=Backoff(cfg.mqtt.local.reconnect.initial_s, cfg.mqtt.local.reconnect.max_s),
            on_state=self._report_link_state,
        )
        self.recorder = Recorder(self.bus, store, cfg.store.readings_batch_max,
                                 cfg.store.readings_flush_s)
        self.health = HealthMonitor(self.bus)
        self.rooms = RoomsView(self.bus, cfg)
        services += [self.link, self.recorder,
                     LocalPublisher(self.bus, self.link, cfg.local_topic_prefix()), self.health, self.rooms]
        self.alerts = AlertService(cfg, self.bus, self.clock, self.record_event,
                                   history=store.alert_replay)
        services.append(self.alerts)
        self.commands = CommandService(store, self.clock)
        services.append(LocalCommandTopic(self.link, self.commands, cfg.local_topic_prefix(),
                                          self.clock))
        if cfg.mqtt.local.discovery.enabled:
            rooms = {r.id: r.name or r.id for r in cfg.rooms}
            info = {d.id: (d.name or d.id, d.type, rooms.get(d.room_id, d.room_id)) for d in cfg.devices}
            services.append(HomeAssistantDiscovery(self.bus, self.link, cfg.local_topic_prefix(),
                                                   cfg.mqtt.local.discovery.prefix, cfg.gateway_id,
                                                   info))
        if cfg.uplink is not None and cfg.uplink.enabled:
            assert self.commands is not None, "the command service is built first"
            self.uplink = build_uplink(cfg, store, self.bus, self.clock, self.record_event,
                                       self._uplink_password, self.commands, self._platform_key)
            services += self.uplink.services
        services += build_device_services(cfg, self.bus, self.clock, self.link, self.commands,
                                          self.record_event, self._device_passwords)
        services += self._build_cameras()
        if cfg.console.enabled:
            assert self.alerts is not None, "the alerts service is built first"
            console_app = create_app(store=store, alerts=self.alerts, bus=self.bus,
                                     snapshots=self.snapshots, clock=self.clock,
                                     secure_cookies=cfg.console.secure_cookies or cfg.console.tls, config=cfg,
                                     commands=self.commands,
                                     cameras={c.camera.id: c for c in self.cameras}, rooms=self.rooms,
                                     uplink=self.uplink.metrics if self.uplink else None)
            self.console = ConsoleServer(console_app, cfg.console.host, cfg.console.port,
                                         tls_cert_file=cfg.console.tls_cert_file,
                                         tls_key_file=cfg.console.tls_key_file)
            services.append(self.console)
        interval = watchdog_interval()
        if interval is not None:
            services.append(WatchdogPinger(interval))
        return services

    def _build_cameras(self) -> list[Service]:
        """One service per enabled camera, sharing one set of models and one inference pool."""
        cameras = [c for c in self.config.cameras if c.enabled]
        if not cameras:
            return []
        vision = self.config.vision
        if self.vision is None:  # sessions survive a rebuild: loading them costs seconds
            self.vision = VisionModels(vision)
        models = self.vision
        privacy = vision.privacy
        if privacy.snapshots:
            self.snapshots = SnapshotStore(
                self.config.data_dir / "snapshots",
                face_finder=models.regions_to_blur if privacy.blur_faces else None,
                blur_faces=privacy.blur_faces, max_count=privacy.snapshot_max_count,
                max_bytes=int(privacy.snapshot_max_mb * 1024 * 1024),
                max_age_s=privacy.snapshot_max_age_days * 86400)
        self.cameras = [CameraService(cam, self._camera_passwords.get(cam.id), models, self.bus,
                                      self.clock, self.record_event, self.snapshots)
                        for cam in cameras]
        return list(self.cameras)

    async def record_event(self, event: SafetyEvent) -> Envelope:
        """Persist a safety event (giving it its seq), then tell the bus."""
        assert self.store is not None, "the store opens before any service runs"
        envelope = await self.store.add_event(event)
        self.bus.publish(envelope)
        return envelope

    def _report_link_state(self, state: str, detail: str) -> None:
        # systemctl status shows this line, so "broker unreachable" is visible there.
        notify(f"STATUS=local MQTT {state}: {detail}")

    def request_stop(self) -> None:
        """Begin a clean stop (what SIGTERM does)."""
        if self.health is not None:
            self.health.drain()
            self.devices_online_at_stop = self.health.devices_online
        if self.supervisor is not None:
            self.supervisor.stop()

    async def run(self, stop_after: float | None = None,
                  on_ready: Callable[[Gateway], None] | None = None) -> int:
        """Run until SIGTERM/SIGINT (or stop_after seconds); return the exit code."""
        started = time.monotonic()
        data_dir = await asyncio.to_thread(prepare_data_dir, self.config.data_dir)
        store = self.store = await Store.open(data_dir, self.clock)
        loop = asyncio.get_running_loop()
        try:
            services = self.services = self.build_services(store)
            self.supervisor = Supervisor(services, RestartPolicy(**self.config.supervisor.model_dump()))
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.request_stop)
            if stop_after is not None:
                loop.call_later(stop_after, self.request_stop)
            await store.append_audit("system", "gateway.start", self.config.gateway_id,
                                     {"version": __version__})

            def started_all() -> None:
                self.ready_at = time.monotonic() - started
                notify("READY=1")
                log.info("gateway %s ready in %.0f ms", self.config.gateway_id, self.ready_at * 1000)
                if on_ready is not None:
                    on_ready(self)

            try:
                await self.supervisor.run(started_all)
            except RestartBudgetExhausted as err:
                log.critical("%s; exiting so systemd restarts the daemon", err)
                return EXIT_RESTART_BUDGET
            notify("STOPPING=1")
            await store.append_audit("system", "gateway.stop", self.config.gateway_id, {})
            return EXIT_OK
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            await store.close()
            if self.vision is not None:
                self.vision.close()
