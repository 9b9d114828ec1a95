"""Config of the uplink to the central campus platform: broker, outbox classes, signed commands."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from edge.config_base import SecretSource, StrictModel, located

MessageClass = Literal["event", "occupancy", "telemetry"]
CLASSES: tuple[MessageClass, ...] = ("event", "occupancy", "telemetry")  # replay order


class ClassLimits(StrictModel):
    """Caps, lifetime and full-policy of one outbox message class."""

    max_rows: int = Field(ge=100, description="Undelivered messages of this class kept at most.")
    max_mb: float = Field(gt=0, description="Undelivered payload megabytes of this class kept at most.")
    ttl_s: float | None = Field(
        None, gt=0, description="Drop an undelivered message older than this (seconds); none: keep.")


class OutboxConfig(StrictModel):
    """The store-and-forward outbox: one set of limits per message class.

    Safety events are never evicted: at their cap a critical local alert is raised and they
    keep being accepted (only the disk guard stops them). Occupancy and telemetry drop their
    oldest undelivered messages when full.
    """

    event: ClassLimits = Field(
        default_factory=lambda: ClassLimits(max_rows=1_000_000, max_mb=1024.0),
        description="Safety events and alert transitions (never evicted, never expire).")
    occupancy: ClassLimits = Field(
        default_factory=lambda: ClassLimits(max_rows=200_000, max_mb=100.0, ttl_s=7 * 86400.0),
        description="Occupancy counts on change (drop-oldest when full).")
    telemetry: ClassLimits = Field(
        default_factory=lambda: ClassLimits(max_rows=500_000, max_mb=200.0, ttl_s=3 * 86400.0),
        description="Aggregated readings (drop-oldest when full).")

    @model_validator(mode="after")
    def _events_never_expire(self) -> OutboxConfig:
        if self.event.ttl_s is not None:
            raise located("safety events never expire: remove ttl_s", "event", "ttl_s")
        return self


class AllowRule(StrictModel):
    """Which actions the platform may run on which devices."""

    devices: list[str] = Field(min_length=1, description="Device ids, 'gateway', or '*' for every device.")
    actions: list[str] = Field(min_length=1, description="Action names, or '*' for every action.")


class CommandsConfig(StrictModel):
    """Signed commands from the central platform (the `cmd` topic)."""

    enabled: bool = Field(False, description="Accept commands from the platform at all.")
    public_key_file: Path | None = Field(
        None, description="The platform's Ed25519 public key (PEM, or 32 raw bytes base64 in a file).")
    allow: list[AllowRule] = Field(
        default_factory=list,
        description="Allowlist: a command runs only if one rule names its device and action.")
    max_payload_bytes: int = Field(16384, ge=256, le=1_048_576,
                                   description="Larger cmd messages are refused.")
    clock_skew_s: float = Field(
        30.0, ge=0, le=3600, description="Tolerance for issued_at in the future (unsynchronised clocks).")

    @model_validator(mode="after")
    def _key_when_enabled(self) -> CommandsConfig:
        if self.enabled and self.public_key_file is None:
            raise located("commands need the platform's public key", "public_key_file")
        return self


class UplinkConfig(SecretSource):
    """The connection to the central campus broker and what is sent over it (contract campus/v1)."""

    enabled: bool = Field(True, description="Send upward at all (off: the outbox still fills).")
    url: str = Field(description="mqtt://host:port or mqtts://host:port of the central broker "
                                 "(IPv6 in brackets: mqtts://[2001:db8::1]:8883).")
    protocol: Literal["3.1.1", "5"] = Field(
        "5", description="MQTT version; with 5, telemetry carries a message expiry (its ttl_s).")
    client_id: str | None = Field(None, description="MQTT client id; default 'edge-<site_id>-<gateway_id>'.")
    username: str | None = Field(None, description="Username for the central broker.")
    tls_ca_file: Path | None = Field(None, description="PEM CA bundle for the broker; system CAs if unset.")
    tls_cert_file: Path | None = Field(None, description="PEM client certificate for mutual TLS.")
    tls_key_file: Path | None = Field(None, description="PEM key of the client certificate.")
    keepalive_s: int = Field(30, ge=2, le=3600,
                             description="MQTT keepalive; a dead link is noticed within ~1.5x this.")
    reconnect_initial_s: float = Field(1.0, gt=0, le=300, description="First retry delay (full jitter).")
    reconnect_max_s: float = Field(60.0, gt=0, le=3600, description="Longest retry delay.")
    topic_root: str = Field("campus/v1", description="Contract root; topics are <root>/<site>/<gateway>/...")
    telemetry_interval_s: float = Field(
        60.0, ge=1, le=3600, description="Readings are sent as min/avg/max per device metric per interval.")
    replay_rate: float = Field(
        500.0, gt=0, description="Backlog (historical) messages per second at most, so live ones go first.")
    inflight: int = Field(100, ge=1, le=1000, description="QoS 1 messages awaiting PUBACK at once.")
    outbox: OutboxConfig = Field(default_factory=OutboxConfig, description="Outbox limits per class.")
    commands: CommandsConfig = Field(default_factory=CommandsConfig, description="Downlink commands.")

    @model_validator(mode="after")
    def _consistent(self) -> UplinkConfig:
        parts = urlsplit(self.url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise located("must be mqtt://host[:port] or mqtts://host[:port]", "url")
        try:
            parts.port  # noqa: B018 - raises ValueError for an out-of-range port
        except ValueError as err:
            raise located(f"bad port: {err}", "url") from err
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise located("tls_cert_file and tls_key_file must be set together",
                          "tls_key_file" if self.tls_key_file is None else "tls_cert_file")
        if (self.password_env or self.password_file) and not self.username:
            raise located("a password needs a username", "username")
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise located("reconnect_max_s must be >= reconnect_initial_s", "reconnect_max_s")
        root = self.topic_root.strip("/")
        if not root or "+" in root or "#" in root:
            raise located("must be a topic without '+' or '#'", "topic_root")
        return self

    def broker_address(self) -> tuple[str, int, bool]:
        """Host, port and whether TLS is used."""
        parts = urlsplit(self.url)
        use_tls = parts.scheme == "mqtts" or self.tls_ca_file is not None or self.tls_cert_file is not None
        return parts.hostname or "", parts.port or (8883 if use_tls else 1883), use_tls
