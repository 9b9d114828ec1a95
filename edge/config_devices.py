"""The `devices:` section of the config: one entry per device, told apart by `type`."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, model_validator

from edge.config_base import Identifier, SecretSource, StrictModel, located

_METRIC_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_HOST_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


def _check_metric(value: str) -> str:
    if not _METRIC_RE.match(value):
        raise ValueError("must be 1-40 lower-case letters, digits or '_' starting with a letter")
    return value


def _check_port(value: str) -> str:
    if value.startswith("tcp://"):
        parts = urlsplit(value)
        try:
            port = parts.port
        except ValueError as err:
            raise ValueError(f"bad port: {err}") from err
        if not parts.hostname or port is None:
            raise ValueError("a TCP port is written tcp://host:port (IPv6: tcp://[addr]:port)")
    elif not value.startswith("/"):
        raise ValueError(
            "must be an absolute serial device path (prefer /dev/serial/by-id/...) or tcp://host:port"
        )
    return value


def _check_host(value: str) -> str:
    bare = value.strip("[]")
    try:
        ipaddress.ip_address(bare)
        return bare
    except ValueError:
        pass
    if not _HOST_RE.match(bare):
        raise ValueError("must be an IP address or a host name (letters, digits, '-', dots)")
    return bare


Metric = Annotated[str, AfterValidator(_check_metric)]
PortPath = Annotated[str, AfterValidator(_check_port)]


class DeviceBase(StrictModel):
    """What every device has: an id, the room it is in, and a name for people."""

    id: Identifier = Field(description="Device id used in topics and events, e.g. 'node-r101'.")
    room_id: Identifier = Field(description="Room the device is in; must be listed in rooms.")
    name: str = Field("", description="Human name shown on the console and in Home Assistant.")


class NodeDeviceConfig(DeviceBase):
    """A classroom sensor node speaking node protocol v1 on a serial port (or TCP converter)."""

    type: Literal["node"] = Field(description="'node': our sensor-node firmware.")
    port: PortPath = Field(
        description="Serial device (prefer /dev/serial/by-id/... so it survives replugging) "
        "or tcp://host:port of a serial-to-Ethernet converter."
    )
    baudrate: int = Field(115200, ge=1200, le=4_000_000, description="Serial speed in baud.")
    heartbeat_s: float = Field(
        10.0, gt=0, le=3600,
        description="The node sends a frame (telemetry or heartbeat) at least this often.",
    )
    missed_heartbeats: int = Field(
        3, ge=1, le=100, description="Offline after this many heartbeat periods without a frame."
    )
    command_timeout_s: float = Field(2.0, gt=0, le=60, description="Wait this long for ACK/NACK.")
    command_retries: int = Field(2, ge=0, le=10, description="Resend a command this often.")
    reopen_max_s: float = Field(
        2.0, gt=0, le=300, description="Longest wait between attempts to reopen a lost port."
    )


class RegisterConfig(StrictModel):
    """One value read from a Modbus device."""

    metric: Metric = Field(description="Metric name, e.g. 'co2'; used in topics.")
    address: int = Field(ge=0, le=65535, description="Register (or coil) address, 0-based.")
    function: Literal["holding", "input", "coil", "discrete"] = Field(
        "holding", description="Register table: holding (FC3), input (FC4), coil (FC1), discrete (FC2)."
    )
    type: Literal["uint16", "int16", "uint32", "int32", "float32", "bool"] = Field(
        "uint16", description="How the raw registers are read; 32-bit types span two registers."
    )
    scale: float = Field(1.0, allow_inf_nan=False, description="value = raw * scale + offset.")
    offset: float = Field(0.0, allow_inf_nan=False, description="value = raw * scale + offset.")
    unit: str = Field("", description="Unit of the value, e.g. 'ppm', '°C'.")
    word_order: Literal["big", "little"] = Field(
        "big", description="Order of the two registers of a 32-bit value."
    )

    @model_validator(mode="after")
    def _bits_are_bool(self) -> RegisterConfig:
        if (self.function in ("coil", "discrete")) != (self.type == "bool"):
            raise located("coil and discrete inputs are type bool, registers are not", "type")
        width = 2 if self.type in ("uint32", "int32", "float32") else 1
        if self.address + width > 65536:
            raise located(f"a {self.type} at {self.address} runs past register 65535", "address")
        return self


class ModbusDeviceConfig(DeviceBase):
    """A Modbus RTU (RS-485) or Modbus TCP sensor, polled on an interval."""

    type: Literal["modbus"] = Field(description="'modbus': a Modbus RTU or TCP device.")
    port: PortPath = Field(
        description="RS-485 adapter (/dev/serial/by-id/...) for RTU, or tcp://host:port for Modbus TCP."
        " Devices on the same port share the bus and take turns."
    )
    unit_id: int = Field(
        1, ge=0, le=255,
        description="Modbus unit (slave) address: 1-247 on RTU; 0-255 on Modbus TCP gateways.",
    )
    baudrate: int = Field(9600, ge=1200, le=921_600, description="RTU serial speed.")
    parity: Literal["N", "E", "O"] = Field("N", description="RTU parity: N, E or O.")
    stopbits: Literal[1, 2] = Field(1, description="RTU stop bits.")
    poll_s: float = Field(10.0, gt=0, le=3600, description="Seconds between polls.")
    timeout_s: float = Field(
        0.5, gt=0, le=30,
        description="Wait this long for an answer; devices sharing a port use the largest value.",
    )
    retries: int = Field(
        1, ge=0, le=5,
        description="Retries of a failed read within one poll; devices sharing a port use the "
        "largest value. A device that stopped answering is tried once per backoff period.",
    )
    missed_polls: int = Field(3, ge=1, le=100, description="Offline after this many failed polls.")
    registers: list[RegisterConfig] = Field(min_length=1, description="Values to read.")

    @model_validator(mode="after")
    def _unit_id_fits_the_line(self) -> ModbusDeviceConfig:
        if not self.port.startswith("tcp://") and not 1 <= self.unit_id <= 247:
            raise located("on an RTU line unit_id is 1-247 (0 is broadcast, which never answers)",
                          "unit_id")
        return self

    @model_validator(mode="after")
    def _unique_metrics(self) -> ModbusDeviceConfig:
        names = [r.metric for r in self.registers]
        for i, name in enumerate(names):
            if names.index(name) != i:
                raise located(f"metric {name!r} is read twice", "registers", i, "metric")
        return self

    def bus_settings(self) -> tuple[int, str, int]:
        """Serial settings that every device on the same RTU port must share."""
        return self.baudrate, self.parity, self.stopbits


class PjlinkDeviceConfig(DeviceBase, SecretSource):
    """A projector speaking PJLink class 1 over TCP."""

    type: Literal["pjlink"] = Field(description="'pjlink': a PJLink class 1 projector.")
    host: Annotated[str, AfterValidator(_check_host)] = Field(
        description="Projector host name or IP address (IPv6 with or without brackets)."
    )
    port: int = Field(4352, ge=1, le=65535, description="PJLink TCP port.")
    poll_s: float = Field(30.0, gt=0, le=3600, description="Seconds between status polls.")
    timeout_s: float = Field(5.0, gt=0, le=60, description="Wait this long for each answer.")
    missed_polls: int = Field(2, ge=1, le=100, description="Offline after this many failed polls.")


class MqttValueConfig(StrictModel):
    """Where one reading sits in a sensor's JSON payload."""

    metric: Metric = Field(description="Metric name, e.g. 'temperature'.")
    path: str = Field(
        min_length=1, description="Dotted key path in the JSON payload, e.g. 'env.temp'."
    )
    unit: str = Field("", description="Unit of the value after scaling.")
    scale: float = Field(1.0, allow_inf_nan=False, description="value = raw * scale + offset.")
    offset: float = Field(0.0, allow_inf_nan=False, description="value = raw * scale + offset.")


class MqttSensorConfig(DeviceBase):
    """A sensor that already publishes JSON on the local broker (e.g. via Zigbee2MQTT)."""

    type: Literal["mqtt"] = Field(description="'mqtt': a sensor publishing on the local broker.")
    topic: str = Field(min_length=1, description="Topic it publishes on (no wildcards).")
    values: list[MqttValueConfig] = Field(min_length=1, description="Readings in its payload.")
    offline_after_s: float = Field(
        600.0, gt=0, description="Offline when nothing arrived for this long."
    )

    @model_validator(mode="after")
    def _no_wildcards(self) -> MqttSensorConfig:
        if "+" in self.topic or "#" in self.topic:
            raise located("one device is one topic: no '+' or '#'", "topic")
        return self


SimMetric = Literal["temperature", "humidity", "co2", "pm25", "illuminance", "noise"]
DEFAULT_SIM_METRICS: tuple[SimMetric, ...] = ("temperature", "humidity", "co2")


class SimulatedSensorConfig(DeviceBase):
    """An in-process simulated environment sensor (for demos and tests)."""

    type: Literal["simulated"] = Field(description="'simulated': readings made up in-process.")
    interval_s: float = Field(5.0, gt=0, le=3600, description="Seconds between readings.")
    metrics: list[SimMetric] = Field(
        default_factory=lambda: list(DEFAULT_SIM_METRICS),
        min_length=1,
        description="Metrics it reports.",
    )


DeviceConfig = Annotated[
    NodeDeviceConfig | ModbusDeviceConfig | PjlinkDeviceConfig | MqttSensorConfig
    | SimulatedSensorConfig,
    Field(discriminator="type"),
]

DEVICE_MODELS: dict[str, type[DeviceBase]] = {
    "node": NodeDeviceConfig, "modbus": ModbusDeviceConfig, "pjlink": PjlinkDeviceConfig,
    "mqtt": MqttSensorConfig, "simulated": SimulatedSensorConfig,
}


def check_devices(devices: list[DeviceConfig], room_ids: list[str]) -> None:
    """Cross-check devices: unique ids, known rooms, ports not claimed twice, shared buses agree."""
    seen: set[str] = set()
    for i, dev in enumerate(devices):
        if dev.id in seen:
            raise located(f"device id {dev.id!r} is used twice", "devices", i, "id")
        seen.add(dev.id)
        if dev.room_id not in room_ids:
            raise located(f"room {dev.room_id!r} is not defined under rooms", "devices", i, "room_id")
    topics: dict[str, str] = {}
    for i, dev in enumerate(devices):
        if isinstance(dev, MqttSensorConfig):
            if dev.topic in topics:
                raise located(f"topic {dev.topic!r} is already read by {topics[dev.topic]!r}",
                              "devices", i, "topic")
            topics[dev.topic] = dev.id
    nodes: dict[str, str] = {}
    buses: dict[str, ModbusDeviceConfig] = {}
    units: set[tuple[str, int]] = set()
    for i, dev in enumerate(devices):
        if isinstance(dev, NodeDeviceConfig):
            if dev.port in nodes or dev.port in buses:
                raise located(f"port {dev.port} is used by another device", "devices", i, "port")
            nodes[dev.port] = dev.id
        elif isinstance(dev, ModbusDeviceConfig):
            if dev.port in nodes:
                raise located(f"port {dev.port} is used by node {nodes[dev.port]!r}",
                              "devices", i, "port")
            first = buses.setdefault(dev.port, dev)
            if dev.bus_settings() != first.bus_settings():
                raise located(f"devices on {dev.port} share one bus: baudrate, parity and "
                              f"stopbits must match {first.id!r}", "devices", i, "baudrate")
            if (dev.port, dev.unit_id) in units:
                raise located(f"unit_id {dev.unit_id} is used twice on {dev.port}",
                              "devices", i, "unit_id")
            units.add((dev.port, dev.unit_id))
