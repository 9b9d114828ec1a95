"""Config reload on SIGHUP: re-read the file, plan the change, swap only the services it touches."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge.bus import Subscription
from edge.config import EdgeConfig
from edge.config_devices import PjlinkDeviceConfig
from edge.config_loader import load_config
from edge.errors import ConfigError, KeyUnusable, SecretUnavailable
from edge.logs import apply_log_config
from edge.reload import MQTT_SENSORS, ReloadPlan, device_units, effective_config, plan_reload
from edge.rooms_view import RoomsView
from edge.sdnotify import notify
from edge.supervisor import Service
from edge.uplink.signature import load_public_key

if TYPE_CHECKING:
    from edge.app import Gateway

log = logging.getLogger(__name__)


@dataclass
class _Secrets:
    """Secrets a reload's changed parts need (read off the loop)."""

    local: str | None = None
    devices: dict[str, str | None] = field(default_factory=dict)
    cameras: dict[str, str | None] = field(default_factory=dict)
    uplink: str | None = None
    key: Ed25519PublicKey | None = None


class ConfigReloader:
    """Applies a re-read config to a running gateway; untouched services keep running as they are."""

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway
        self.reloads = 0  # reloads applied (tests, health)
        self._reload_lock = asyncio.Lock()  # two SIGHUPs in a row run one after the other
        self._reload_tasks: set[asyncio.Task[bool]] = set()

    def on_sighup(self) -> None:
        """Start a reload (the SIGHUP handler)."""
        gw = self.gw
        if gw.config_path is None:
            log.warning("SIGHUP: this gateway has no config file to reload (demo)")
            return
        task = asyncio.create_task(self.reload(), name="config-reload")
        self._reload_tasks.add(task)
        task.add_done_callback(self._reload_tasks.discard)

    async def reload(self) -> bool:
        """Re-read the config file and apply what can change live (SIGHUP); True when applied."""
        gw = self.gw
        async with self._reload_lock:
            if gw.supervisor is None or gw.supervisor.stopping or gw.ready_at is None:
                log.warning("config reload ignored: the gateway is starting or stopping")
                return False
            # Also for a bad file: with Type=notify-reload systemd waits for RELOADING=1, READY=1.
            # MONOTONIC_USEC: systemd >= 253 wants it along with RELOADING=1.
            notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")
            try:
                return await self._reload()
            except Exception:  # a reload must never take the daemon down
                if gw.supervisor.stopping:
                    log.info("config reload cut short by the stop")
                    return False
                log.exception("config reload failed; the services keep running as they were")
                await self._audit("config.reload_failed", {"problems": ["internal error, see the log"]})
                return False
            finally:
                notify("READY=1")

    async def _reload(self) -> bool:
        gw = self.gw
        assert gw.config_path is not None and gw.store is not None
        try:
            new = await asyncio.to_thread(load_config, gw.config_path)
        except ConfigError as err:
            for problem in err.problems:
                log.error("config reload: %s", problem)
            log.error("config reload: %s has %d problem(s); nothing changed", gw.config_path,
                      len(err.problems))
            await self._audit("config.reload_failed", {"problems": [str(p) for p in err.problems]})
            return False
        plan = plan_reload(gw.config, new)
        config = effective_config(gw.config, new, plan)
        kept = {d.id for d in config.devices} | {c.id for c in config.cameras if c.enabled}
        retired = ({d.id for d in gw.config.devices} | {c.id for c in gw.config.cameras}) - kept
        try:
            secrets = await asyncio.to_thread(self._read_secrets, config, plan)
        except (SecretUnavailable, KeyUnusable) as err:
            log.error("config reload: %s; nothing changed", err)
            await self._audit("config.reload_failed", {"problems": [str(err)]})
            return False
        for section in plan.needs_restart:
            log.warning("%s changed: needs a restart (systemctl restart edge)", section)
        gw.config = config
        try:
            await self._apply(plan, secrets, retired)
        except Exception as err:
            if gw.supervisor is not None and gw.supervisor.stopping:
                raise  # e.g. a swapped-in service spent its restart budget: the run is ending
            # The new config is in place but not every service took it: say so, and say how out.
            # (A service past its restart budget ends the supervisor's run by itself.)
            log.exception("config reload partly applied; restart the daemon to apply all of it "
                          "(systemctl restart edge)")
            await self._audit("config.reload_failed", {"problems": [f"partly applied: {err}"]})
            return False
        self.reloads += 1
        live = [k for k in plan.changed if k not in plan.needs_restart]
        log.info("config reloaded from %s: %s", gw.config_path,
                 ", ".join(live) + " applied" if live else "nothing to apply")
        await self._audit("config.reload", {"changed": list(plan.changed),
                                            "needs_restart": list(plan.needs_restart)})
        return True

    def _read_secrets(self, config: EdgeConfig, plan: ReloadPlan) -> _Secrets:
        """Secrets the changed parts need, read off the loop (files may be slow or missing)."""
        out = _Secrets()
        if plan.local:
            out.local = config.mqtt.local.resolve_password("mqtt.local")
        fresh = {*plan.units_added, *plan.units_changed}
        out.devices = {dev.id: dev.resolve_password(f"devices[{i}] ({dev.id})")
                          for i, dev in enumerate(config.devices)
                          if isinstance(dev, PjlinkDeviceConfig) and f"pjlink:{dev.id}" in fresh}
        out.cameras = {cam.id: cam.resolve_password(f"cameras[{i}] ({cam.id})")
                          for i, cam in enumerate(config.cameras) if f"camera-{cam.id}" in fresh}
        if plan.uplink and config.uplink is not None:
            out.uplink = config.uplink.resolve_password("uplink")
            key_file = config.uplink.commands.public_key_file
            out.key = load_public_key(key_file) if config.uplink.commands.enabled and key_file else None
        return out

    async def _audit(self, action: str, detail: dict[str, object]) -> None:
        gw = self.gw
        assert gw.store is not None
        await gw.store.append_audit("system", action, gw.config.gateway_id, detail)

    async def _swap(self, remove: list[Service], add: list[Service]) -> None:
        """Replace running services; the removed ones stop following the bus."""
        gw = self.gw
        assert gw.supervisor is not None
        await gw.supervisor.swap([s.name for s in remove], add)
        for service in remove:
            for value in vars(service).values():
                if isinstance(value, Subscription):
                    value.close()
        gw.services = [s for s in gw.services if s not in remove] + add

    def _running(self, *names: str) -> list[Service]:
        gw = self.gw
        return [s for s in gw.services if s.name in names]

    async def _apply(self, plan: ReloadPlan, secrets: _Secrets, retired: set[str]) -> None:
        """Apply a plan to the running services; untouched services keep running as they are."""
        gw = self.gw
        cfg = gw.config
        assert gw.store is not None and gw.alerts is not None
        if plan.log:
            apply_log_config(cfg.log.level, cfg.log.format)
        if gw.retention is not None:  # read at its next run; metrics settings via the console's config
            gw.retention.reconfigure(cfg.retention)
            gw.retention.uplink = cfg.uplink is not None and cfg.uplink.enabled
        if plan.alerts or retired:
            gw.alerts.reconfigure(cfg, retired)
        if gw.commands is not None:
            for device_id in retired:
                gw.commands.unregister(device_id)
        gw._update_discovery_info()
        gw._device_passwords.update(secrets.devices)
        gw._camera_passwords.update(secrets.cameras)
        if plan.rooms_view:
            old_rooms = self._running("rooms-view")
            gw.rooms = RoomsView(gw.bus, cfg)
            await self._swap(old_rooms, [gw.rooms])
        if plan.local:
            gw._local_password = secrets.local
            names = ["mqtt-local", "local-publisher", "local-commands", "ha-discovery", MQTT_SENSORS]
            add: list[Service] = []
            if plan.broker:
                names.append("embedded-broker")
                gw.broker = None
                if cfg.mqtt.local.url == "embedded":
                    add.append(gw._build_broker())
            add += gw._build_local()
            if MQTT_SENSORS in device_units(cfg):
                add += gw._build_unit(MQTT_SENSORS)
            else:
                gw._units.pop(MQTT_SENSORS, None)
            await self._swap(self._running(*names), add)
        for key in (*plan.units_removed, *plan.units_changed, *plan.units_added):
            old_unit = gw._units.pop(key, [])
            if key in plan.units_removed:
                gw.cameras = [c for c in gw.cameras if c not in old_unit]
            await self._swap(old_unit, [] if key in plan.units_removed else gw._build_unit(key))
        if plan.uplink:
            old_uplink = gw.uplink.services if gw.uplink else []
            gw._uplink_password, gw._platform_key = secrets.uplink, secrets.key
            enabled = cfg.uplink is not None and cfg.uplink.enabled
            gw.uplink = gw._build_uplink(gw.store) if enabled else None
            await self._swap(old_uplink, gw.uplink.services if gw.uplink else [])
        if plan.console:
            old_console = self._running("console")
            if not cfg.console.enabled:
                await self._swap(old_console, [])
            else:
                await self._swap(old_console, [gw._build_console(gw.store)])
        if gw.retention is not None:  # a first camera added by this reload made the snapshot store
            gw.retention.snapshots = gw.snapshots
        if gw.console is not None:  # what the console's routes read
            ctx = gw.console.app.state.console
            ctx.config, ctx.rooms, ctx.snapshots = cfg, gw.rooms, gw.snapshots
            ctx.cameras = {c.camera.id: c for c in gw.cameras}
            ctx.uplink = gw.uplink.metrics if gw.uplink else None
            ctx.secure_cookies = cfg.console.secure_cookies or cfg.console.tls

    def cancel(self) -> None:
        """Cancel a reload still running (the gateway is stopping)."""
        for task in list(self._reload_tasks):
            task.cancel()
