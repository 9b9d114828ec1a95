"""Composition root: build the services, run them, handle signals, shut down cleanly."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path

from edge import __version__
from edge.alerts.service import AlertService
from edge.backoff import Backoff
from edge.bus import Bus
from edge.clock import Clock, SystemClock, iso_utc
from edge.commands import CommandService
from edge.commands.local_topic import LocalCommandTopic
from edge.config import EdgeConfig
from edge.config_devices import PjlinkDeviceConfig
from edge.config_vision import CameraConfig
from edge.console import ConsoleServer, create_app
from edge.device_services import build_device_services
from edge.disk_guard import DiskGuard
from edge.embedded_broker import HOST as EMBEDDED_HOST
from edge.embedded_broker import EmbeddedBroker
from edge.errors import KeyUnusable, RestartBudgetExhausted, SecretUnavailable
from edge.events import Envelope, SafetyEvent
from edge.gateway_reload import ConfigReloader
from edge.ha_discovery import HomeAssistantDiscovery
from edge.health import HealthMonitor
from edge.health_report import health_report
from edge.local_publisher import LocalPublisher
from edge.mqtt import BrokerEndpoint, MqttLink, StatusTopic
from edge.recorder import Recorder
from edge.reload import (
    camera_units,
    device_unit,
    device_units,
)
from edge.retention import RetentionService
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

    def __init__(self, config: EdgeConfig, clock: Clock | None = None,
                 config_path: Path | None = None) -> None:
        self.config = config
        self.config_path = config_path  # re-read on SIGHUP; None (the demo): nothing to reload
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
        self.disk_guard = DiskGuard(config.data_dir, config.store.min_free_mb)
        self.retention: RetentionService | None = None
        self.ready_at: float | None = None
        self.devices_online_at_stop = 0
        self.reloader = ConfigReloader(self)
        self._discovery_info: dict[str, tuple[str, str, str]] = {}  # updated in place on reload
        self._units: dict[str, list[Service]] = {}  # device and camera services by unit name
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
        endpoint = BrokerEndpoint(*local.broker_address(), *local.tls_paths(), username=local.username,
                                  password=self._local_password)
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
            services.append(self._build_broker())
        self.commands = CommandService(store, self.clock)
        link, *local = self._build_local()
        self.recorder = Recorder(self.bus, store, cfg.store.readings_batch_max,
                                 cfg.store.readings_flush_s, guard=self.disk_guard)
        self.health = HealthMonitor(self.bus)
        self.rooms = RoomsView(self.bus, cfg)
        self.alerts = AlertService(cfg, self.bus, self.clock, self.record_event,
                                   history=store.alert_replay)
        services += [link, self.recorder, local[0], self.health, self.rooms, self.alerts, *local[1:]]
        if cfg.uplink is not None and cfg.uplink.enabled:
            self.uplink = self._build_uplink(store)
            services += self.uplink.services
        for key in device_units(cfg):
            services += self._build_unit(key)
        for key in camera_units(cfg):
            services += self._build_unit(key)
        # After the cameras: it prunes the snapshot store the first camera makes.
        self.retention = RetentionService(cfg.retention, store, self.snapshots, self.clock, self.disk_guard,
                                          uplink=cfg.uplink is not None and cfg.uplink.enabled)
        services.append(self.retention)
        if cfg.console.enabled:
            services.append(self._build_console(store))
        interval = watchdog_interval()
        if interval is not None:
            services.append(WatchdogPinger(interval))
        return services

    def _build_broker(self) -> EmbeddedBroker:
        self.broker = EmbeddedBroker(self.config.mqtt.local.embedded_port)
        return self.broker

    def _build_local(self) -> list[Service]:
        """The local link and what holds it: publisher, command topic, discovery (link first)."""
        cfg = self.config
        assert self.commands is not None, "the command service is built first"
        self.link = MqttLink(
            "mqtt-local",
            self._endpoint_factory(),
            cfg.mqtt.local.client_id or f"edge-{cfg.gateway_id}",
            self._status_topic(),
            keepalive_s=cfg.mqtt.local.keepalive_s,
            backoff=Backoff(cfg.mqtt.local.reconnect.initial_s, cfg.mqtt.local.reconnect.max_s),
            on_state=self._report_link_state,
        )
        services: list[Service] = [self.link, LocalPublisher(self.bus, self.link, cfg.local_topic_prefix()),
                                   LocalCommandTopic(self.link, self.commands, cfg.local_topic_prefix(),
                                                     self.clock)]
        if cfg.mqtt.local.discovery.enabled:
            self._update_discovery_info()
            services.append(HomeAssistantDiscovery(self.bus, self.link, cfg.local_topic_prefix(),
                                                   cfg.mqtt.local.discovery.prefix, cfg.gateway_id,
                                                   self._discovery_info))
        return services

    def _update_discovery_info(self) -> None:
        # In place: the running discovery service holds this dict.
        rooms = {r.id: r.name or r.id for r in self.config.rooms}
        self._discovery_info.clear()
        self._discovery_info.update({d.id: (d.name or d.id, d.type, rooms.get(d.room_id, d.room_id))
                                     for d in self.config.devices})

    def _build_uplink(self, store: Store) -> Uplink:
        assert self.commands is not None, "the command service is built first"
        return build_uplink(self.config, store, self.bus, self.clock, self.record_event,
                            self._uplink_password, self.commands, self._platform_key, self.disk_guard)

    def _build_unit(self, key: str) -> list[Service]:
        """The services of one device unit or camera (see edge.reload.device_units), remembered by key."""
        cfg = self.config
        if key.startswith("camera-"):
            cam = next(c for c in cfg.cameras if f"camera-{c.id}" == key)
            services: list[Service] = [self._camera_service(cam)]
        else:
            assert self.link is not None and self.commands is not None, "built before the devices"
            devices = [d for d in cfg.devices if device_unit(d) == key]
            services = build_device_services(cfg.model_copy(update={"devices": devices}), self.bus,
                                             self.clock, self.link, self.commands, self.record_event,
                                             self._device_passwords)
        self._units[key] = services
        return services

    def _build_console(self, store: Store) -> ConsoleServer:
        cfg = self.config
        if self.console is None:
            assert self.alerts is not None, "the alerts service is built first"
            app = create_app(store=store, alerts=self.alerts, bus=self.bus,
                             snapshots=self.snapshots, clock=self.clock,
                             secure_cookies=cfg.console.secure_cookies or cfg.console.tls, config=cfg,
                             commands=self.commands,
                             cameras={c.camera.id: c for c in self.cameras}, rooms=self.rooms,
                             uplink=self.uplink.metrics if self.uplink else None,
                             health=lambda: health_report(self))
        else:  # a reload: the same app, so signed-in users stay signed in
            app = self.console.app
        self.console = ConsoleServer(app, cfg.console.host, cfg.console.port,
                                     tls_cert_file=cfg.console.tls_cert_file,
                                     tls_key_file=cfg.console.tls_key_file)
        return self.console

    def _camera_service(self, cam: CameraConfig) -> CameraService:
        """One camera's service; the models and snapshot store are made by the first camera."""
        vision = self.config.vision
        if self.vision is None:  # sessions survive a rebuild: loading them costs seconds
            self.vision = VisionModels(vision)
        privacy = vision.privacy
        if privacy.snapshots and self.snapshots is None:
            self.snapshots = SnapshotStore(
                self.config.data_dir / "snapshots",
                face_finder=self.vision.regions_to_blur if privacy.blur_faces else None,
                blur_faces=privacy.blur_faces, max_count=privacy.snapshot_max_count,
                max_bytes=int(privacy.snapshot_max_mb * 1024 * 1024),
                max_age_s=privacy.snapshot_max_age_days * 86400, guard=self.disk_guard)
        camera = CameraService(cam, self._camera_passwords.get(cam.id), self.vision, self.bus,
                               self.clock, self.record_event, self.snapshots)
        self.cameras = [c for c in self.cameras if c.camera.id != cam.id] + [camera]
        return camera

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

    def _on_sighup(self) -> None:
        self.reloader.on_sighup()

    async def reload(self) -> bool:
        """Re-read the config file and apply what can change live (SIGHUP); True when applied."""
        return await self.reloader.reload()

    @property
    def reloads(self) -> int:
        """Reloads applied since start."""
        return self.reloader.reloads

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
            loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
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
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            self.reloader.cancel()
            await store.close()
            if self.vision is not None:
                self.vision.close()
