"""Operations config: how long stored data is kept, and who may read the metrics."""

from __future__ import annotations

from ipaddress import ip_network

from pydantic import Field, field_validator

from edge.config_base import StrictModel

# The Cybersecurity Law asks network operators to keep logs for at least six months.
AUDIT_MIN_DAYS = 180


class RetentionConfig(StrictModel):
    """Retention jobs: old rows are deleted in small batches, once an hour by default."""

    readings_days: float = Field(30.0, gt=0, description="Sensor readings older than this are deleted.")
    events_days: float = Field(
        365.0, gt=0, description="Safety events older than this are deleted, except any still "
                                 "waiting in the outbox for the campus platform.")
    audit_days: float = Field(
        365.0, ge=AUDIT_MIN_DAYS,
        description=f"Audit log entries older than this are deleted (at least {AUDIT_MIN_DAYS}; "
                    "the hash chain stays verifiable from the oldest kept entry).")
    commands_days: float = Field(
        180.0, gt=0, description="Finished command records older than this are deleted.")
    interval_s: float = Field(3600.0, ge=10, le=86400, description="Seconds between retention runs.")


class MetricsConfig(StrictModel):
    """Prometheus metrics at /metrics on the console's address, and the health JSON."""

    enabled: bool = Field(True, description="Serve /metrics (Prometheus text format).")
    allow: list[str] = Field(
        default_factory=lambda: ["127.0.0.1/32", "::1/128"],
        description="Client networks that may read /metrics without signing in (CIDR); "
                    "others need a console session.")

    @field_validator("allow")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ip_network(item, strict=False)
            except ValueError as err:
                raise ValueError(f"{item!r} is not a network: {err}") from err
        return value
