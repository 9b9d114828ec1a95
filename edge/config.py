"""The config tree: pydantic v2 models for the one YAML file an installer edits."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from edge.errors import SecretUnavailable

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def located(message: str, *path: str | int) -> ValueError:
    """Build a cross-field error that points at a key below the model raising it."""
    # Pydantic gives a model validator's error the model's own location; the config
    # loader reads this marker to point the installer at the exact key instead.
    dotted = ".".join(str(p) for p in path)
    return ValueError(f"[at {dotted}] {message}")


def _check_id(value: str) -> str:
    if not _ID_RE.match(value):
        raise ValueError(
            "must be 1-64 letters, digits, '_', '.', '-' starting with a letter or digit "
            "(it is used in MQTT topics, so no '/', '+', '#' or spaces)"
        )
    return value


Identifier = Annotated[str, AfterValidator(_check_id)]


def _check_topic_prefix(value: str) -> str:
    try:
        filled = value.format(site_id="s", gateway_id="g")
    except (KeyError, IndexError, ValueError) as err:
        raise ValueError("only {site_id} and {gateway_id} may be filled in") from err
    if not filled.strip("/") or "+" in filled or "#" in filled:
        raise ValueError("must be a non-empty topic without '+' or '#'")
    return value


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretSource(StrictModel):
    """Where a secret comes from: an environment variable or a file, never the YAML."""

    password_env: str | None = Field(
        None, description="Name of the environment variable that holds the password."
    )
    password_file: Path | None = Field(
        None, description="Path of a file whose content (trailing newline stripped) is the password."
    )

    @model_validator(mode="before")
    @classmethod
    def _no_inline_secret(cls, data: object) -> object:
        if isinstance(data, dict) and "password" in data:
            raise located(
                "inline passwords are not allowed; use password_env or password_file",
                "password",
            )
        return data

    @model_validator(mode="after")
    def _one_source(self) -> SecretSource:
        if self.password_env and self.password_file:
            raise located("set password_env or password_file, not both", "password_file")
        return self

    def resolve_password(self, where: str) -> str | None:
        """Read the password from its env var or file; None when none is configured."""
        if self.password_env:
            value = os.environ.get(self.password_env)
            if value is None:
                raise SecretUnavailable(where, f"environment variable {self.password_env} is not set")
            return value
        if self.password_file:
            try:
                return self.password_file.read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as err:
                raise SecretUnavailable(where, f"cannot read {self.password_file}: {err}") from err
        return None


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


class RoomConfig(StrictModel):
    """A room the gateway looks after."""

    id: Identifier = Field(description="Room id used in topics and events, e.g. 'r101'.")
    name: str = Field("", description="Human name shown on the console.")


SimMetric = Literal["temperature", "humidity", "co2", "pm25", "illuminance", "noise"]
DEFAULT_SIM_METRICS: tuple[SimMetric, ...] = ("temperature", "humidity", "co2")


class SimulatedSensorConfig(StrictModel):
    """A simulated environment sensor (for demos and tests)."""

    id: Identifier = Field(description="Device id.")
    room_id: Identifier = Field(description="Room the device is in; must be listed in rooms.")
    interval_s: float = Field(5.0, gt=0, le=3600, description="Seconds between readings.")
    metrics: list[SimMetric] = Field(
        default_factory=lambda: list(DEFAULT_SIM_METRICS),
        min_length=1,
        description="Metrics it reports.",
    )


class DevicesConfig(StrictModel):
    """Devices attached to this gateway."""

    simulated: list[SimulatedSensorConfig] = Field(
        default_factory=list, description="Simulated sensors."
    )


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
    devices: DevicesConfig = Field(
        default_factory=DevicesConfig, description="Devices attached to this gateway."
    )

    @model_validator(mode="after")
    def _references(self) -> EdgeConfig:
        room_ids = [r.id for r in self.rooms]
        for i, room_id in enumerate(room_ids):
            if room_ids.index(room_id) != i:
                raise located(f"room id {room_id!r} is used twice", "rooms", i, "id")
        seen: set[str] = set()
        for i, dev in enumerate(self.devices.simulated):
            if dev.id in seen:
                raise located(f"device id {dev.id!r} is used twice", "devices", "simulated", i, "id")
            seen.add(dev.id)
            if dev.room_id not in room_ids:
                raise located(
                    f"room {dev.room_id!r} is not defined under rooms",
                    "devices", "simulated", i, "room_id",
                )
        return self

    def local_topic_prefix(self) -> str:
        """Return the local topic prefix with the site and gateway ids filled in."""
        return self.mqtt.local.topic_prefix.format(
            site_id=self.site_id, gateway_id=self.gateway_id
        ).rstrip("/")
