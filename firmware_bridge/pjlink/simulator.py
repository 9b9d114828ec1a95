"""A PJLink class 1 projector on a TCP port: for tests, demos and bench work."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import re
import secrets
import time
from collections.abc import Callable

from firmware_bridge.pjlink.protocol import (
    AUTH_FAILED,
    ERROR_LEVEL_CODES,
    ERROR_NAMES,
    MAX_LINE,
    POWER_CODES,
    TERMINATOR,
    auth_digest,
)

# A command line: '%1', four upper-case letters or digits, then anything (checked per command).
_COMMAND = re.compile(rb"%1([A-Z0-9]{4})(.*)", re.DOTALL)
_PARAM = re.compile(rb" ([ -~]{1,128})")
_DIGEST_LEN = 32
_MUTES = ("10", "11", "20", "21", "30", "31")  # AVMT: video, audio or both; off or on


class SimulatedProjector:
    """A projector's behaviour plus a small asyncio server that speaks it."""

    def __init__(
        self,
        password: str | None = None,
        *,
        name: str = "Room projector",
        manufacturer: str = "CampusEdge",
        product: str = "SIM-PJ1",
        inputs: tuple[str, ...] = ("11", "12", "31", "32", "51"),
        warm_up_s: float = 3.0,
        cool_down_s: float = 3.0,
        idle_timeout_s: float = 30.0,
        lamp_hour_s: float = 3600.0,
        lamp_hours: int = 0,
        lamp_count: int = 1,
    ) -> None:
        self.password = password
        self.name = name
        self.manufacturer = manufacturer
        self.product = product
        self.inputs = inputs
        self.input = inputs[0]
        self.mute = "30"
        self.warm_up_s = warm_up_s
        self.cool_down_s = cool_down_s
        self.idle_timeout_s = idle_timeout_s
        self.lamp_hour_s = lamp_hour_s  # seconds of lit time that count as one lamp hour
        self.lamp_count = lamp_count  # 0: a laser or LED projector, which answers ERR1 to LAMP
        self.refuse_auth = False  # ask for authentication, then answer ERRA to anything
        self.silent = False  # accept connections, never send a byte
        self.connections = 0
        self.auth_failures = 0
        self.garbage_lines = 0
        self._power = "off"
        self._transition_ends = 0.0
        self._lamp_s = lamp_hours * lamp_hour_s
        self._lit_since: float | None = None
        self._errors = dict.fromkeys(ERROR_NAMES, "ok")
        self._server: asyncio.Server | None = None
        self._handlers: dict[asyncio.StreamWriter, asyncio.Task[None]] = {}

    @property
    def power(self) -> str:
        """The power state now: 'off', 'warming', 'on' or 'cooling'."""
        # Transitions finish lazily, when someone looks: no timer task to start or cancel.
        now = time.monotonic()
        if self._power in ("warming", "cooling") and now >= self._transition_ends:
            self._power = "on" if self._power == "warming" else "off"
        return self._power

    @property
    def lamp_hours(self) -> int:
        """Hours the lamp has been lit, growing while it is."""
        lit_s = self._lamp_s
        if self._lit_since is not None:
            lit_s += time.monotonic() - self._lit_since
        return int(lit_s / self.lamp_hour_s)

    def set_error(self, name: str, level: str) -> None:
        """Report an error status, e.g. ('filter', 'warning'); 'ok' clears it."""
        if name not in self._errors or level not in ERROR_LEVEL_CODES:
            raise ValueError(f"unknown error {name!r} or level {level!r}")
        self._errors[name] = level

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on host (a literal address) and return the bound port."""
        # The limit bounds a line without CR: the reader raises, and that connection is closed.
        self._server = await asyncio.start_server(self._serve, host, port, limit=2 * MAX_LINE)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening and drop every connection."""
        if self._server is not None:
            self._server.close()
        # Aborting ends each handler's read; cancelling them instead makes Python 3.11's
        # stream server log the CancelledError as an unhandled exception.
        for writer in self._handlers:
            writer.transport.abort()
        if self._handlers:
            await asyncio.wait(list(self._handlers.values()), timeout=2.0)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def answer(self, body: str, param: str) -> str:
        """The data of the reply to one command, e.g. ('POWR', '?') -> '0'."""
        if body == "POWR":
            return self._power_command(param)
        if body == "INPT":
            if param != "?" and param not in self.inputs:
                return "ERR2"
            if self.power != "on":
                return "ERR3"  # like real projectors, inputs are only handled when on
            if param == "?":
                return self.input
            self.input = param
            return "OK"
        if body == "AVMT":
            if param == "?":
                return self.mute
            if param not in _MUTES:
                return "ERR2"
            self.mute = param
            return "OK"
        queries: dict[str, Callable[[], str]] = {
            "LAMP": lambda: " ".join([f"{self.lamp_hours} {int(self._lit_since is not None)}"]
                                     * self.lamp_count),
            "ERST": lambda: "".join(ERROR_LEVEL_CODES[self._errors[name]] for name in ERROR_NAMES),
            "NAME": lambda: self.name,
            "INF1": lambda: self.manufacturer,
            "INF2": lambda: self.product,
            "INFO": lambda: "simulated",
            "CLSS": lambda: "1",
            "INST": lambda: " ".join(self.inputs),
        }
        if body not in queries or (body == "LAMP" and not self.lamp_count):
            return "ERR1"
        return queries[body]() if param == "?" else "ERR2"

    def _power_command(self, param: str) -> str:
        state = self.power
        if param == "?":
            return POWER_CODES[state]
        now = time.monotonic()
        if param == "1":
            if state == "cooling":
                return "ERR3"
            if self._errors["lamp"] == "error":
                return "ERR4"  # a dead lamp cannot be switched on
            if state == "off":
                self._power, self._transition_ends = "warming", now + self.warm_up_s
                self._lit_since = now
            return "OK"
        if param == "0":
            if state == "warming":
                return "ERR3"
            if state == "on":
                self._power, self._transition_ends = "cooling", now + self.cool_down_s
                if self._lit_since is not None:
                    self._lamp_s += now - self._lit_since
                    self._lit_since = None
            return "OK"
        return "ERR2"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers[writer] = task
        self.connections += 1
        try:
            if self.silent:
                while await reader.read(256):  # a hung projector: takes bytes, says nothing
                    pass
                return
            await self._converse(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client left, stalled, or sent a line too long for PJLink: drop it
        finally:
            self._handlers.pop(writer, None)
            writer.close()
            with contextlib.suppress(OSError):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        random = secrets.token_hex(4) if self.password is not None or self.refuse_auth else None
        await self._send(writer, b"PJLINK 0\r" if random is None else f"PJLINK 1 {random}\r".encode())
        authenticated = random is None
        while True:
            try:
                async with asyncio.timeout(self.idle_timeout_s):
                    line = (await reader.readuntil(TERMINATOR)).strip(b"\r\n")
            except TimeoutError:
                return  # real projectors drop idle connections after about 30 s
            if not line:
                continue
            if not authenticated:
                if not self._digest_ok(random or "", line[:_DIGEST_LEN]):
                    self.auth_failures += 1
                    await self._send(writer, AUTH_FAILED + TERMINATOR)
                    return
                authenticated = True
                line = line[_DIGEST_LEN:]
            reply = self._reply(line)
            if reply is None:
                self.garbage_lines += 1
                return  # not even a command we could name in an ERR reply: hang up
            await self._send(writer, reply)

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        # A client that sends but never reads must not pin this handler once buffers fill up.
        async with asyncio.timeout(self.idle_timeout_s):
            await writer.drain()

    def _digest_ok(self, random: str, digest: bytes) -> bool:
        if self.refuse_auth or self.password is None:
            return False
        expected = auth_digest(random, self.password).encode("ascii")
        return hmac.compare_digest(expected, digest)

    def _reply(self, line: bytes) -> bytes | None:
        command = _COMMAND.fullmatch(line)
        if command is None:
            return None
        body = command.group(1).decode("ascii")
        param = _PARAM.fullmatch(command.group(2))
        # A malformed parameter reaches answer() as '', which every known command rejects (ERR2).
        data = self.answer(body, param.group(1).decode("ascii") if param else "")
        return f"%1{body}={data}".encode() + TERMINATOR
