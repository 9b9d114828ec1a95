"""Gateway side of a PJLink class 1 projector: one short TCP connection per batch of commands."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from firmware_bridge.errors import (
    PjlinkAuthError,
    PjlinkCommandError,
    PjlinkConnectionError,
    PjlinkError,
    PjlinkProtocolError,
    PjlinkTimeout,
)
from firmware_bridge.pjlink.protocol import (
    MAX_LINE,
    PORT,
    TERMINATOR,
    auth_digest,
    encode_command,
    is_input_code,
    parse_errors,
    parse_greeting,
    parse_input,
    parse_lamps,
    parse_power,
    parse_reply,
)

log = logging.getLogger(__name__)

_T = TypeVar("_T")
# Room for a stray LF and a little slack; anything longer without CR is not PJLink.
READ_LIMIT = 2 * MAX_LINE


@dataclass
class PjlinkStats:
    """Counters of one projector client (errors exclude timeouts and auth failures)."""

    connections: int = 0
    commands: int = 0
    errors: int = 0
    timeouts: int = 0
    auth_failures: int = 0


@dataclass(frozen=True)
class ProjectorStatus:
    """One snapshot of a projector, read over a single connection."""

    power: str  # off, on, cooling or warming
    input: str | None  # None while the projector cannot tell (ERR3, typically in standby)
    lamp_hours: int | None  # the first lamp; None for lamp-less (laser, LED) projectors
    errors: dict[str, str] = field(hash=False)


class _Session:
    """One open connection after the greeting: commands go one after another."""

    def __init__(
        self, client: PjlinkClient, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
        digest: str | None,
    ) -> None:
        self._client = client
        self._reader = reader
        self._writer = writer
        self._digest = digest

    async def send(self, body: str, param: str) -> str:
        """Send one command and return the data of its reply."""
        line = encode_command(body, param)
        if self._digest is not None:
            # Class 1 authenticates a connection by its first command only.
            line = self._digest.encode("ascii") + line
            self._digest = None
        self._client.stats.commands += 1
        self._writer.write(line)
        await self._client._step(self._writer.drain(), f"sending {body}")
        reply = await self._client._step(self._reader.readuntil(TERMINATOR), f"reply to {body}")
        reply_body, data = parse_reply(reply)
        if reply_body != body:
            raise PjlinkProtocolError(f"{self._client.name}: sent {body}, got a reply to {reply_body}")
        log.debug("projector %s: %s %s -> %s", self._client.name, body, param, data)
        return data

    async def optional(self, body: str, tolerated: frozenset[str]) -> str | None:
        """Query body; None instead of PjlinkCommandError for the tolerated ERR codes."""
        try:
            return await self.send(body, "?")
        except PjlinkCommandError as err:
            if err.code in tolerated:
                return None
            raise

    async def close(self) -> None:
        """Close the connection, waiting at most the client's timeout; never raises."""
        self._writer.close()
        try:
            async with asyncio.timeout(self._client.timeout_s):
                await self._writer.wait_closed()
        except OSError:  # includes TimeoutError: a peer that does not read must not hold us
            self._writer.transport.abort()


class PjlinkClient:
    """A PJLink class 1 projector on TCP; each call connects, runs its commands and disconnects."""

    def __init__(
        self, host: str, port: int = PORT, password: str | None = None, timeout_s: float = 5.0
    ) -> None:
        self.host = host.strip("[]")  # '[::1]' as written in URLs works as well as '::1'
        self.port = port
        self.timeout_s = timeout_s
        self.name = f"[{self.host}]:{port}" if ":" in self.host else f"{self.host}:{port}"
        self._password = password
        self._lock = asyncio.Lock()  # one exchange at a time: a projector serves few connections
        self._writer: asyncio.StreamWriter | None = None  # of the connection in use
        self._closed = False
        self.stats = PjlinkStats()

    async def power_on(self) -> None:
        """Switch the projector on (it warms up for a while before reporting 'on')."""
        await self._set("POWR", "1")

    async def power_off(self) -> None:
        """Switch the projector off (it cools down for a while before reporting 'off')."""
        await self._set("POWR", "0")

    async def power(self) -> str:
        """The power state: 'off', 'on', 'cooling' or 'warming'."""
        return await self._query("POWR", parse_power)

    async def set_input(self, code: str) -> None:
        """Switch to an input such as '31' (digital 1); ValueError for a malformed code."""
        if not is_input_code(code):
            raise ValueError(f"PJLink input must be two digits, type 1-5 then number 1-9: {code!r}")
        await self._set("INPT", code)

    async def input(self) -> str:
        """The selected input code, e.g. '31'."""
        return await self._query("INPT", parse_input)

    async def lamps(self) -> list[tuple[int, bool]]:
        """Each lamp's (hours, lit)."""
        return await self._query("LAMP", parse_lamps)

    async def errors(self) -> dict[str, str]:
        """Fan, lamp, temperature, cover, filter and other: each 'ok', 'warning' or 'error'."""
        return await self._query("ERST", parse_errors)

    async def info(self) -> dict[str, str]:
        """Name, manufacturer, product and PJLink class, read over one connection."""
        async with self._batch() as session:
            return {
                "name": await session.send("NAME", "?"),
                "manufacturer": await session.send("INF1", "?"),
                "product": await session.send("INF2", "?"),
                "class": await session.send("CLSS", "?"),
            }

    async def status(self) -> ProjectorStatus:
        """Power, input, first lamp's hours and error status, read over one connection."""
        async with self._batch() as session:
            power = parse_power(await session.send("POWR", "?"))
            # Many projectors cannot report the input in standby or while warming (ERR3).
            input_data = await session.optional("INPT", frozenset({"ERR3"}))
            # ERR1 to LAMP is how the spec says "this projector has no lamp".
            lamp_data = await session.optional("LAMP", frozenset({"ERR1", "ERR3"}))
            errors = parse_errors(await session.send("ERST", "?"))
            lamps = parse_lamps(lamp_data) if lamp_data is not None else []
            return ProjectorStatus(
                power=power,
                input=parse_input(input_data) if input_data is not None else None,
                lamp_hours=lamps[0][0] if lamps else None,
                errors=errors,
            )

    async def close(self) -> None:
        """Abort an exchange in progress and refuse further calls."""
        self._closed = True
        if self._writer is not None:
            self._writer.transport.abort()

    async def _step(self, awaitable: Awaitable[_T], what: str) -> _T:
        """Await one network step within timeout_s, mapping failures to PjlinkError subclasses."""
        try:
            async with asyncio.timeout(self.timeout_s):
                return await awaitable
        except TimeoutError as err:  # before OSError, of which it is a subclass
            raise PjlinkTimeout(f"{self.name}: no {what} within {self.timeout_s:g}s") from err
        except asyncio.IncompleteReadError as err:
            raise PjlinkConnectionError(f"{self.name}: connection closed before {what}") from err
        except asyncio.LimitOverrunError as err:
            raise PjlinkProtocolError(f"{self.name}: line without CR ({what})") from err
        except OSError as err:
            raise PjlinkConnectionError(f"{self.name}: {what}: {err}") from err
        except (ValueError, OverflowError) as err:
            # Raised by open_connection for an address it cannot even try: a host that is
            # not a valid name ("a..b" fails IDNA encoding, a NUL byte) or a port > 65535.
            raise PjlinkConnectionError(f"{self.name}: {what}: bad address: {err}") from err

    async def _query(self, body: str, parse: Callable[[str], _T]) -> _T:
        async with self._batch() as session:
            return parse(await session.send(body, "?"))  # inside the batch, so stats count bad data

    async def _set(self, body: str, param: str) -> None:
        async with self._batch() as session:
            data = await session.send(body, param)
            if data != "OK":  # inside the batch, so stats count it
                raise PjlinkProtocolError(f"{self.name}: {body} {param} answered {data!r}, not OK")

    @contextlib.asynccontextmanager
    async def _batch(self) -> AsyncIterator[_Session]:
        async with self._lock:
            try:
                if self._closed:
                    raise PjlinkConnectionError(f"{self.name}: client is closed")
                session = await self._open()
                try:
                    yield session
                finally:
                    self._writer = None
                    await session.close()
            except PjlinkTimeout:
                self.stats.timeouts += 1
                raise
            except PjlinkAuthError:
                self.stats.auth_failures += 1
                raise
            except PjlinkError:
                self.stats.errors += 1
                raise

    async def _open(self) -> _Session:
        self.stats.connections += 1
        reader, writer = await self._step(
            asyncio.open_connection(self.host, self.port, limit=READ_LIMIT), "connection"
        )
        self._writer = writer  # from here on close() can abort the connection
        try:
            digest = await self._handshake(reader)
        except BaseException:
            self._writer = None
            writer.transport.abort()
            raise
        return _Session(self, reader, writer, digest)

    async def _handshake(self, reader: asyncio.StreamReader) -> str | None:
        if self._closed:  # close() came while connecting
            raise PjlinkConnectionError(f"{self.name}: client is closed")
        random = parse_greeting(await self._step(reader.readuntil(TERMINATOR), "greeting"))
        if random is None:
            return None  # no authentication: a configured password is simply not needed
        if self._password is None:
            raise PjlinkAuthError(f"{self.name}: projector wants a password, none is configured")
        return auth_digest(random, self._password)
