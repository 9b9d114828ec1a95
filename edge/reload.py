"""Config reload planning: what a new config changes, and what of it can be applied live (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge.config import EdgeConfig
from edge.config_devices import DeviceConfig, ModbusDeviceConfig, MqttSensorConfig

# Sections a running gateway cannot take over: they name its identity, its files, its loaded
# models or its own restart policy. A reload keeps the old values and says a restart is needed.
RESTART_ONLY = ("site_id", "gateway_id", "data_dir", "store", "vision", "supervisor")
# Sections a reload applies; any other section (a new one included) needs a restart until
# the gateway learns to apply it.
LIVE = ("log", "mqtt", "rooms", "devices", "cameras", "alerts", "console", "uplink", "retention", "metrics")
MQTT_SENSORS = "mqtt-sensors"


@dataclass(frozen=True)
class ReloadPlan:
    """What to do for one reload; empty tuples and False mean "leave it running"."""

    changed: tuple[str, ...] = ()  # top-level sections that differ
    needs_restart: tuple[str, ...] = ()  # changed, but kept at their old values
    log: bool = False  # apply level/format to the running log
    alerts: bool = False  # rules, schedules or rooms: AlertService.reconfigure
    rooms_view: bool = False  # rooms, devices or cameras: rebuild the console's rooms overview
    local: bool = False  # restart the local MQTT link and everything holding it
    broker: bool = False  # restart the embedded broker too
    units_removed: tuple[str, ...] = ()  # device units ("sim:x", "modbus:/dev/..") and "camera-x"
    units_added: tuple[str, ...] = ()
    units_changed: tuple[str, ...] = ()
    uplink: bool = False  # rebuild the uplink's link, intake and sender
    console: bool = False  # restart the console's server (the app and its sessions stay)

    @property
    def empty(self) -> bool:
        """True when nothing changed."""
        return not self.changed


def device_unit(dev: DeviceConfig) -> str:
    """The name of the service that runs a device (Modbus devices on one port share one)."""
    if isinstance(dev, ModbusDeviceConfig):
        return f"modbus:{dev.port}"
    if isinstance(dev, MqttSensorConfig):
        return MQTT_SENSORS
    return f"{'sim' if dev.type == 'simulated' else dev.type}:{dev.id}"


def device_units(config: EdgeConfig) -> dict[str, list[dict[str, Any]]]:
    """Device configs grouped the way services are built: one per device, per Modbus port, all MQTT sensors.

    The keys are the services' names, so a unit's old services can be found in the supervisor.
    """
    units: dict[str, list[dict[str, Any]]] = {}
    for dev in config.devices:
        units.setdefault(device_unit(dev), []).append(dev.model_dump(mode="json"))
    return units


def camera_units(config: EdgeConfig) -> dict[str, list[dict[str, Any]]]:
    """Enabled cameras by service name."""
    return {f"camera-{cam.id}": [cam.model_dump(mode="json")] for cam in config.cameras if cam.enabled}


def _diff(old: dict[str, Any], new: dict[str, Any]) -> tuple[list[str], list[str], list[str]]:
    removed = [k for k in old if k not in new]
    added = [k for k in new if k not in old]
    changed = [k for k in old if k in new and old[k] != new[k]]
    return removed, added, changed


def plan_reload(old: EdgeConfig, new: EdgeConfig) -> ReloadPlan:
    """Compare two validated configs section by section; return what a live reload does."""
    before, after = old.model_dump(mode="json"), new.model_dump(mode="json")
    changed = tuple(k for k in after if before.get(k) != after.get(k))
    needs_restart = tuple(k for k in changed if k not in LIVE)
    live = set(changed) - set(needs_restart)
    removed, added, modified = _diff({**device_units(old), **camera_units(old)},
                                     {**device_units(new), **camera_units(new)})
    local = "mqtt" in live
    if MQTT_SENSORS in (*removed, *added, *modified):
        # The link subscribes only when it connects: new sensor topics need a fresh link.
        local = True
        for units in (removed, added, modified):
            if MQTT_SENSORS in units:
                units.remove(MQTT_SENSORS)
    old_local, new_local = old.mqtt.local, new.mqtt.local
    embedded = "embedded" in (old_local.url, new_local.url)
    broker = local and embedded and (old_local.url, old_local.embedded_port) != (
        new_local.url, new_local.embedded_port)
    # The uplink's intake and downlink hold the device list (rooms of telemetry, command targets).
    placed = ({d.id: d.room_id for d in old.devices}, {d.id: d.room_id for d in new.devices})
    uplink = "uplink" in live or (new.uplink is not None and placed[0] != placed[1])
    return ReloadPlan(
        changed=changed, needs_restart=needs_restart, log="log" in live,
        alerts=bool(live & {"alerts", "rooms", "cameras"}),
        rooms_view=bool(live & {"rooms", "devices", "cameras"}),
        local=local, broker=broker,
        units_removed=tuple(removed), units_added=tuple(added), units_changed=tuple(modified),
        uplink=uplink, console="console" in live,
    )


def effective_config(old: EdgeConfig, new: EdgeConfig, plan: ReloadPlan) -> EdgeConfig:
    """The config to run with: the new one, except the sections that need a restart keep old values."""
    if not plan.needs_restart:
        return new
    return new.model_copy(update={k: getattr(old, k) for k in plan.needs_restart})
