"""The security console's JSON API: sessions, alerts, snapshots and a live alert stream."""

from edge.console.app import create_app
from edge.console.server import ConsoleServer

__all__ = ["ConsoleServer", "create_app"]
