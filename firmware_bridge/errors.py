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
    """A node answered none of the attempts to send a command (each waited timeout_s)."""

    def __init__(self, port: str, seq: int, timeout_s: float, attempts: int = 1) -> None:
        self.port = port
        self.seq = seq
        self.timeout_s = timeout_s
        self.attempts = attempts
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
        super().__init__(f"{port}: no ACK/NACK for seq {seq} after {tries} of {timeout_s:g}s")


class PjlinkError(BridgeError):
    """A PJLink projector could not be reached, refused a command or answered nonsense."""


class PjlinkAuthError(PjlinkError):
    """The projector rejected the password (PJLINK ERRA), or wants one and none is configured."""


class PjlinkTimeout(PjlinkError):
    """A projector did not accept, greet or answer within the timeout."""


class PjlinkConnectionError(PjlinkError):
    """The TCP connection to a projector failed, was refused or was closed by the projector."""


class PjlinkProtocolError(PjlinkError):
    """A projector sent a line that is not PJLink class 1, or not the reply that was asked for."""


PJLINK_ERROR_CODES = {
    "ERR1": "undefined command",
    "ERR2": "out of parameter",
    "ERR3": "unavailable time",
    "ERR4": "projector failure",
}


class PjlinkCommandError(PjlinkError):
    """The projector answered ERR1-ERR4 to a command; code tells which."""

    def __init__(self, command: str, code: str) -> None:
        self.command = command
        self.code = code
        self.meaning = PJLINK_ERROR_CODES.get(code, "unknown error")
        super().__init__(f"{command}: {code} ({self.meaning})")


class ModbusReadError(BridgeError):
    """A Modbus read failed: no response, an exception response, bad data, or no connection.

    kind is "timeout", "exception", "bad_response" or "connection"; exception_code is the
    device's Modbus exception code when kind is "exception".
    """

    def __init__(
        self, bus: str, unit_id: int, reason: str, kind: str = "bad_response",
        exception_code: int | None = None,
    ) -> None:
        self.bus = bus
        self.unit_id = unit_id
        self.reason = reason
        self.kind = kind
        self.exception_code = exception_code
        super().__init__(f"{bus} unit {unit_id}: {reason}")
