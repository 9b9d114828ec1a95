"""Commands to devices: schemas per device type, the at-most-once service, the local topic."""

from edge.command_args import ACTIONS, validate_args
from edge.commands.service import CommandResult, CommandService, DeviceExecutor

__all__ = ["ACTIONS", "CommandResult", "CommandService", "DeviceExecutor", "validate_args"]
