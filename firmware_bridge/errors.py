"""Errors of the device bridge library (independent of the edge daemon)."""

from __future__ import annotations


class BridgeError(Exception):
    """Root of errors raised by firmware_bridge."""


class TransportError(BridgeError):
    """A port could not be opened, read or written (unplugged, permission, gone)."""

    def __init__(self, port: str, reason: str) -> None:
        self.port = port
        self.reason = reason
        super().__init__(f"{port}: {reason}")


class CommandTimeout(BridgeError):
    """A node did not answer a command within the timeout."""

    def __init__(self, port: str, seq: int, timeout_s: float) -> None:
        self.port = port
        self.seq = seq
        self.timeout_s = timeout_s
        super().__init__(f"{port}: no ACK/NACK for seq {seq} within {timeout_s:g}s")
