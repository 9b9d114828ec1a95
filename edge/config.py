"""The config tree: pydantic v2 models for the one YAML file an installer edits."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, model_validator

from edge.config_alerts import AlertsConfig, ScheduleConfig
from edge.config_base import Identifier, SecretSource, StrictModel, located
from edge.config_devices import DeviceConfig, check_devices
from edge.config_ops import MetricsConfig, RetentionConfig
from edge.config_uplink import UplinkConfig
from edge.config_vision import CameraConfig, VisionConfig

__all__ = ["EdgeConfig", "Identifier", "SecretSource", "StrictModel", "located"]


def _check_topic_prefix(value: str) -> str:
    try:
        filled = value.format(site_id="s", gateway_id="g")
    except (KeyError, IndexError, ValueError) as err:
        raise ValueError("only {site_id} and {gateway_id} may be filled in") from err
    if not filled.strip("/") or "+" in filled or "#" in filled:
        raise ValueError("must be a non-empty topic without '+' or '#'")
    return value


class TlsConfig(StrictModel):
    """TLS towards a broker: a CA bundle, and a client certificate for mutual TLS."""

    ca_file: Path | None = Field(
        None, description="PEM CA bundle that signs the broker's certificate; system CAs if unset."
    )
    cert_file: Path | None = Field(None, description="PEM client certificate for mutual TLS.")
    key_file: Path | None = Field(None, description="PEM private key of the client certificate.")

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            missing = "key_file" if self.key_file is None else "cert_file"
            raise located("cert_file and key_file must be set together", missing)
        return self


class ReconnectConfig(StrictModel):
    """Backoff between connection attempts (full jitter, doubling up to the cap)."""

    initial_s: float = Field(1.0, gt=0, le=300, description="First retry delay in seconds.")
    max_s: float = Field(30.0, gt=0, le=3600, description="Longest retry delay in seconds.")

    @model_validator(mode="after")
    def _max_not_below_initial(self) -> ReconnectConfig:
        if self.max_s < self.initial_s:
            raise located("max_s must be >= initial_s", "max_s")
        return self


class DiscoveryConfig(StrictModel):
    """Home Assistant MQTT discovery, so a local Home Assistant or Node-RED sees the devices."""

    enabled: bool = Field(True, description="Publish retained discovery configs for every metric.")
    prefix: str = Field(
        "homeassistant", min_length=1, description="Home Assistant's discovery prefix."
    )


class LocalMqttConfig(SecretSource):
    """The classroom's own broker: where readings and status are published locally."""

    url: str = Field(
        "embedded",
        description=(
            "'embedded' for an in-process broker on 127.0.0.1 (demos), or "
            "mqtt://host:port / mqtts://host:port for a real broker such as Mosquitto."
        ),
    )
    embedded_port: int = Field(
        1883, ge=0, le=65535,
        description="Port for the embedded broker; a free port is chosen if it is taken (0 = any).",
    )
    client_id: str | None = Field(
        None, description="MQTT client id; defaults to 'edge-<gateway_id>'."
    )
    username: str | None = Field(None, description="Username for the broker, if it needs one.")
    tls: TlsConfig | None = Field(
        None, description="TLS settings; implied (with system CAs) by an mqtts:// URL."
    )
    keepalive_s: int = Field(
        30, ge=5, le=3600, description="MQTT keepalive; a dead link is noticed after ~1.5x this."
    )
    topic_prefix: Annotated[str, AfterValidator(_check_topic_prefix)] = Field(
        "edge/{gateway_id}",
        description="Prefix of local topics; {site_id} and {gateway_id} are filled in.",
    )
    reconnect: ReconnectConfig = Field(
        default_factory=ReconnectConfig, description="Backoff between reconnect attempts."
    )
    discovery: DiscoveryConfig = Field(
        default_factory=DiscoveryConfig, description="Home Assistant MQTT discovery."
    )

    @model_validator(mode="after")
    def _consistent(self) -> LocalMqttConfig:
        if self.url == "embedded":
            if self.username or self.password_env or self.password_file:
                raise located("the embedded broker takes no credentials", "username")
            if self.tls:
                raise located("the embedded broker listens without TLS on loopback", "tls")
            return self
        parts = urlsplit(self.url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise located("must be 'embedded' or mqtt://host[:port] or mqtts://host[:port]", "url")
        try:
            parts.port  # noqa: B018 - raises ValueError for an out-of-range port
        except ValueError as err:
            raise located(f"bad port: {err}", "url") from err
        if (self.password_env or self.password_file) and not self.username:
            raise located("a password needs a username", "username")
        return self

    def tls_paths(self) -> tuple[str | None, str | None, str | None]:
        """The CA, client certificate and key files as strings (None where unset)."""
        tls = self.tls
        if tls is None:
            return None, None, None
        ca, cert, key = (str(path) if path else None for path in (tls.ca_file, tls.cert_file, tls.key_file))
        return ca, cert, key

    def broker_address(self) -> tuple[str, int, bool]:
        """Return host, port and whether TLS is used, for a non-embedded URL."""
        parts = urlsplit(self.url)
        use_tls = parts.scheme == "mqtts" or self.tls is not None
        port = parts.port or (8883 if use_tls else 1883)
        return parts.hostname or "", port, use_tls


class MqttConfig(StrictModel):
    """MQTT connections."""

    local: LocalMqttConfig = Field(
        default_factory=LocalMqttConfig, description="The local classroom broker."
    )


class LogConfig(StrictModel):
    """Logging to stdout (journald picks it up under systemd)."""

    level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Lowest level that is logged."
    )
    format: Literal["text", "json"] = Field(
        "text", description="'text' for people, 'json' for one JSON object per line."
    )


class SupervisorConfig(StrictModel):
    """How crashed services are restarted, and how long a stop may take."""

    max_restarts: int = Field(
        5, ge=0, le=1000,
        description="Restarts of one service allowed within window_s before the daemon exits.",
    )
    window_s: float = Field(300.0, gt=0, description="Sliding window for max_restarts, seconds.")
    backoff_initial_s: float = Field(0.5, gt=0, description="First restart delay, seconds.")
    backoff_max_s: float = Field(30.0, gt=0, description="Longest restart delay, seconds.")
    shutdown_timeout_s: float = Field(
        5.0, gt=0, le=60, description="Time allowed for all services to stop on SIGTERM."
    )

    @model_validator(mode="after")
    def _backoff_order(self) -> SupervisorConfig:
        if self.backoff_max_s < self.backoff_initial_s:
            raise located("backoff_max_s must be >= backoff_initial_s", "backoff_max_s")
        return self


class StoreConfig(StrictModel):
    """How readings are written to the SQLite store."""

    readings_batch_max: int = Field(
        500, ge=1, le=100_000, description="Readings written per transaction at most."
    )
    readings_flush_s: float = Field(
        1.0, gt=0, le=60,
        description="Longest time a reading waits in memory before it is committed.",
    )
    min_free_mb: float = Field(
        200.0, ge=0, description="Disk guard: below this much free disk no new snapshots are kept and the "
                                 "uplink stops queueing telemetry and occupancy; below a quarter of it "
                                 "readings are dropped too (safety events are always kept); 0: off.")


class ConsoleConfig(StrictModel):
    """The local security console, served by the daemon (works without the campus network)."""

    enabled: bool = Field(True, description="Serve the console.")
    host: str = Field("127.0.0.1", description="Address to listen on: '0.0.0.0' or '::' for the LAN.")
    port: int = Field(8080, ge=0, le=65535, description="TCP port of the console (0: any free port).")
    secure_cookies: bool = Field(False, description="Mark the session cookie Secure (behind HTTPS).")
    tls_cert_file: Path | None = Field(
        None, description="PEM certificate (chain) to serve the console over HTTPS; needs tls_key_file."
    )
    tls_key_file: Path | None = Field(None, description="PEM private key of tls_cert_file.")

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> ConsoleConfig:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            missing = "tls_key_file" if self.tls_key_file is None else "tls_cert_file"
            raise located("tls_cert_file and tls_key_file must be set together", missing)
        return self

    @property
    def tls(self) -> bool:
        """True when the console serves HTTPS."""
        return self.tls_cert_file is not None


class RoomConfig(StrictModel):
    """A room the gateway looks after."""

    id: Identifier = Field(description="Room id used in topics and events, e.g. 'r101'.")
    name: str = Field("", description="Human name shown on the console.")
    schedule: ScheduleConfig | None = Field(
        None, description="The room's timetable: class periods, terms, holidays. Without one, the room "
                          "gets no after-hours intrusion alerts and no class-time notices.")


class EdgeConfig(StrictModel):
    """The whole gateway configuration."""

    site_id: Identifier = Field(description="Campus/site id, the same on every gateway of a site.")
    gateway_id: Identifier = Field(description="This gateway's id, unique within the site.")
    data_dir: Path = Field(
        Path("/var/lib/edge"), description="Where the database and snapshots live."
    )
    log: LogConfig = Field(default_factory=LogConfig, description="Logging.")
    mqtt: MqttConfig = Field(default_factory=MqttConfig, description="MQTT connections.")
    supervisor: SupervisorConfig = Field(
        default_factory=SupervisorConfig, description="Service restarts and shutdown."
    )
    store: StoreConfig = Field(default_factory=StoreConfig, description="SQLite store tuning.")
    rooms: list[RoomConfig] = Field(default_factory=list, description="Rooms this gateway serves.")
    devices: list[DeviceConfig] = Field(
        default_factory=list, description="Devices attached to this gateway, each with a type."
    )
    vision: VisionConfig = Field(default_factory=VisionConfig, description="On-box vision models.")
    cameras: list[CameraConfig] = Field(default_factory=list, description="Cameras watched by this gateway.")
    alerts: AlertsConfig = Field(default_factory=AlertsConfig, description="Safety alert rules.")
    console: ConsoleConfig = Field(default_factory=ConsoleConfig, description="The security console.")
    retention: RetentionConfig = Field(
        default_factory=RetentionConfig, description="How long readings, events and the audit log are kept."
    )
    metrics: MetricsConfig = Field(default_factory=MetricsConfig, description="Prometheus metrics.")
    uplink: UplinkConfig | None = Field(
        None, description="The central campus platform; without it everything stays on the box "
                          "(the outbox keeps safety events for when an uplink is configured).")

    @model_validator(mode="after")
    def _references(self) -> EdgeConfig:
        room_ids = [r.id for r in self.rooms]
        for i, room_id in enumerate(room_ids):
            if room_ids.index(room_id) != i:
                raise located(f"room id {room_id!r} is used twice", "rooms", i, "id")
        check_devices(self.devices, room_ids)
        device_ids = {d.id for d in self.devices}
        for i, device in enumerate(self.devices):
            if device.id == "gateway":  # the platform's name for this gateway in commands
                raise located("'gateway' is reserved for the gateway itself", "devices", i, "id")
        camera_ids: list[str] = []
        for i, camera in enumerate(self.cameras):
            if camera.room_id not in room_ids:
                raise located(f"room {camera.room_id!r} is not in rooms", "cameras", i, "room_id")
            if camera.id in camera_ids or camera.id in device_ids:
                raise located(f"id {camera.id!r} is already used by a camera or device", "cameras", i, "id")
            camera_ids.append(camera.id)
        if self.uplink is not None:
            known = device_ids | set(camera_ids) | {"gateway", "*"}
            for i, rule in enumerate(self.uplink.commands.allow):
                for j, named in enumerate(rule.devices):
                    if named not in known:
                        raise located(f"device {named!r} is not configured", "uplink", "commands", "allow",
                                      i, "devices", j)
        for room_id in self.alerts.rules.overcrowding.capacity:
            if room_id not in room_ids:
                raise located(f"room {room_id!r} is not in rooms", "alerts", "rules", "overcrowding",
                              "capacity", room_id)
        return self

    def local_topic_prefix(self) -> str:
        """Return the local topic prefix with the site and gateway ids filled in."""
        return self.mqtt.local.topic_prefix.format(
            site_id=self.site_id, gateway_id=self.gateway_id
        ).rstrip("/")
