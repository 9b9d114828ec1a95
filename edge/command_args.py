"""Command vocabulary: what each device type can be told to do, one arguments model per action."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.errors import CommandRejected


class Args(BaseModel):
    """Base of action arguments: strict types, unknown keys refused, absolute states only."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class RelayArgs(Args):
    """Switch a relay channel on or off (never 'toggle': a retry must not undo the first try)."""

    channel: int = Field(0, ge=0, le=255)
    state: Literal["on", "off"]


class LightArgs(Args):
    """Set a dimmable light channel to a level in percent."""

    channel: int = Field(0, ge=0, le=255)
    level: int = Field(ge=0, le=100)


class IrArgs(Args):
    """Send a raw IR code (hex) on an IR emitter channel."""

    channel: int = Field(0, ge=0, le=255)
    code: str = Field(min_length=2, max_length=510, pattern=r"^(?:[0-9a-fA-F]{2})+$")


class ReportIntervalArgs(Args):
    """Set how often the node reports telemetry."""

    seconds: int = Field(ge=1, le=65535)


class PowerArgs(Args):
    """Switch a projector on or off."""

    state: Literal["on", "off"]


class InputArgs(Args):
    """Select a projector input by PJLink code: type 1-5 (RGB/video/digital/storage/network), number 1-9."""

    source: str = Field(pattern=r"^[1-5][1-9]$")


class NoArgs(Args):
    """An action that takes no arguments."""


ACTIONS: dict[str, dict[str, type[Args]]] = {
    "node": {"relay": RelayArgs, "light": LightArgs, "ir": IrArgs,
             "report_interval": ReportIntervalArgs},
    "pjlink": {"power": PowerArgs, "input": InputArgs},
    # Sensors are read-only: every action is refused with "known: none".
    "modbus": {}, "mqtt": {}, "simulated": {},
    # The gateway itself, commanded by the central platform (edge/uplink/downlink.py).
    "gateway": {"ping": NoArgs, "config_version": NoArgs, "resend_status": NoArgs},
}


def validate_args(device_type: str, action: str, args: Any) -> Args:
    """Check a command's action and arguments against its device type; CommandRejected if wrong."""
    actions = ACTIONS.get(device_type, {})
    model = actions.get(action)
    if model is None:
        known = ", ".join(sorted(actions)) or "none"
        raise CommandRejected(f"unknown action {action!r} for a {device_type} device (known: {known})")
    if not isinstance(args, dict):
        raise CommandRejected("args must be a JSON object")
    try:
        return model.model_validate(args)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "args"
        raise CommandRejected(f"args.{where}: {first['msg']}") from err
