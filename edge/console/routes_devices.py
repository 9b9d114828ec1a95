"""Console device routes: the device list and device control for operators."""

from __future__ import annotations

import functools
import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, status
from pydantic import BaseModel, Field, field_validator

from edge.command_args import ACTIONS
from edge.console.auth import Operator, Viewer
from edge.console.context import Ctx
from edge.events import Command

router = APIRouter(prefix="/api")
ACTION_MAX = 64
ARGS_MAX_BYTES = 4096
DeviceId = Annotated[str, Path(max_length=64)]


class CommandBody(BaseModel):
    """A command from the console: one action and its arguments."""

    action: str = Field(max_length=ACTION_MAX)
    args: dict[str, Any] = Field(default_factory=dict)

    @field_validator("args")
    @classmethod
    def _small(cls, args: dict[str, Any]) -> dict[str, Any]:
        # The args land in the commands table and the audit log twice: keep them small.
        if len(json.dumps(args, separators=(",", ":"))) > ARGS_MAX_BYTES:
            raise ValueError(f"args must be at most {ARGS_MAX_BYTES} bytes of JSON")
        return args


@functools.cache  # the vocabulary is fixed at import: build each type's schemas once
def action_schemas(device_type: str) -> dict[str, Any]:
    """Each action of a device type with the JSON schema of its arguments ({} for read-only types)."""
    return {name: model.model_json_schema() for name, model in ACTIONS.get(device_type, {}).items()}


@router.get("/devices")
async def list_devices(who: Viewer, ctx: Ctx) -> list[dict[str, Any]]:
    """Every configured device, in config order, with the actions it accepts."""
    devices = ctx.config.devices if ctx.config is not None else []
    return [{"device_id": d.id, "name": d.name or d.id, "type": d.type, "room_id": d.room_id,
             "actions": action_schemas(d.type)} for d in devices]


@router.post("/devices/{device_id}/commands")
async def send_command(device_id: DeviceId, body: CommandBody, who: Operator, ctx: Ctx) -> dict[str, Any]:
    """Run one command on a device (validated, audited, run at most once); a refusal is status 'rejected'."""
    # Ids come from the config only: a made-up id never reaches the command service or its audit rows.
    if ctx.config is None or all(d.id != device_id for d in ctx.config.devices):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such device")
    if ctx.commands is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "device control is not running")
    command = Command(command_id=str(uuid.uuid4()), device_id=device_id, action=body.action,
                      args=body.args, issued_at=ctx.clock.now())
    result = await ctx.commands.submit(command, actor=who.username)
    return result.as_dict()
