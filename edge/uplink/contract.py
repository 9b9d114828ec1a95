"""The upward MQTT contract campus/v1: topic names and message envelopes (docs/mqtt-contract.md).

The central platform builds on this: change it only by adding optional fields, or by a new
schema version next to this one.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

SCHEMA_PREFIX = "campus/v1/"


def schema(kind: str) -> str:
    """The `schema` value of one message kind, e.g. 'campus/v1/event'."""
    return SCHEMA_PREFIX + kind


def dumps(message: dict[str, Any]) -> str:
    """The wire form of a message: compact JSON, keys sorted (stable for tests and dedupe)."""
    return json.dumps(message, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Topics:
    """The topics of one gateway: <root>/<site_id>/<gateway_id>/<kind>."""

    root: str
    site_id: str
    gateway_id: str

    @property
    def base(self) -> str:
        """The gateway's topic prefix."""
        return f"{self.root.strip('/')}/{self.site_id}/{self.gateway_id}"

    def of(self, kind: str) -> str:
        """The topic of one kind: status, event, telemetry, occupancy, cmd, cmd/result."""
        return f"{self.base}/{kind}"


def occupancy_body(room_id: str, count: int, ts: float, camera_id: str | None,
                   zone_id: str | None) -> dict[str, Any]:
    """The stored part of an occupancy message (sent_at and historical are added when sent)."""
    return {"schema": schema("occupancy"), "message_id": str(uuid.uuid4()), "room_id": room_id,
            "camera_id": camera_id, "zone_id": zone_id, "count": count, "ts": ts}


def telemetry_body(device_id: str, room_id: str | None, start: float, end: float,
                   metrics: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The stored part of one device's aggregated readings over [start, end)."""
    return {"schema": schema("telemetry"), "message_id": str(uuid.uuid4()), "device_id": device_id,
            "room_id": room_id, "interval_start": start, "interval_end": end, "metrics": metrics}


def finish(stored: dict[str, Any], kind: str, site_id: str, gateway_id: str, sent_at: float,
           historical: bool) -> dict[str, Any]:
    """A stored body as sent: with schema, ids, send time and whether it is replayed from the outbox."""
    return {**stored, "schema": schema(kind), "site_id": site_id, "gateway_id": gateway_id,
            "sent_at": round(sent_at, 3), "historical": historical}


def finish_text(stored: str, kind: str, site_id: str, gateway_id: str, sent_at: float,
                historical: bool) -> str:
    """finish() on the stored JSON text, without parsing it (the backlog drain's hot path).

    The send-time fields are appended to the stored object. A body that already mentions one
    of them anywhere (nested data, a foreign row) goes the slow, exact way through finish().
    """
    extra: dict[str, Any] = {"site_id": site_id, "gateway_id": gateway_id, "sent_at": round(sent_at, 3),
                             "historical": historical}
    if kind == "event":  # stored events carry no schema field; the others were built with one
        extra["schema"] = schema(kind)
    body = stored.rstrip()
    if len(body) < 3 or body[-1] != "}" or any(f'"{key}"' in body for key in extra):
        return dumps(finish(json.loads(stored), kind, site_id, gateway_id, sent_at, historical))
    return body[:-1] + "," + dumps(extra)[1:]


def status_message(state: str, site_id: str, gateway_id: str, **extra: Any) -> dict[str, Any]:
    """The retained status: online (with version, since, config_version) or offline (also the will)."""
    return {"schema": schema("status"), "state": state, "site_id": site_id, "gateway_id": gateway_id,
            **extra}


def cmd_result_message(result: dict[str, Any], site_id: str, gateway_id: str,
                       sent_at: float) -> dict[str, Any]:
    """A command's outcome on cmd/result, carrying the command's command_id."""
    return {**result, "schema": schema("cmd_result"), "site_id": site_id, "gateway_id": gateway_id,
            "sent_at": round(sent_at, 3)}
