"""PJLink class 1: codec, and the client against a simulated projector over real TCP sockets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.errors import (
    PjlinkAuthError,
    PjlinkCommandError,
    PjlinkConnectionError,
    PjlinkError,
    PjlinkProtocolError,
    PjlinkTimeout,
)
from firmware_bridge.pjlink import PjlinkClient, ProjectorStatus, SimulatedProjector
from firmware_bridge.pjlink.protocol import (
    auth_digest,
    encode_command,
    parse_errors,
    parse_greeting,
    parse_lamps,
    parse_power,
    parse_reply,
)
from tests.conftest import free_port

FAST = {"warm_up_s": 0.3, "cool_down_s": 0.3}
Factory = Callable[..., Awaitable[tuple[SimulatedProjector, int]]]


@pytest.fixture
async def projector() -> AsyncIterator[Factory]:
    """Start simulated projectors (host, then SimulatedProjector arguments); stopped afterwards."""
    started: list[SimulatedProjector] = []

    async def start(host: str = "127.0.0.1", **kwargs: object) -> tuple[SimulatedProjector, int]:
        sim = SimulatedProjector(**kwargs)  # type: ignore[arg-type]
        started.append(sim)
        return sim, await sim.start(host)

    yield start
    for sim in started:
        await sim.stop()


async def wait_for_power(client: PjlinkClient, state: str, within_s: float = 3.0) -> None:
    async with asyncio.timeout(within_s):
        while await client.power() != state:
            await asyncio.sleep(0.03)


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def raw_exchange(port: int, lines: list[bytes], host: str = "127.0.0.1") -> bytes:
    """Send lines on one raw connection; return all the projector sent until it closed (or 2 s)."""
    reader, writer = await asyncio.open_connection(host, port)
    # Read the greeting first: a reset (the server hangs up on unread input) discards buffered data.
    received = await reader.readuntil(b"\r")
    try:
        for line in lines:
            writer.write(line)
        await writer.drain()
        async with asyncio.timeout(2):
            while chunk := await reader.read(512):
                received += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    finally:
        writer.close()
    return received


# --- codec ---------------------------------------------------------------------------------------


def test_auth_digest_matches_the_spec_example() -> None:
    assert auth_digest("498e4a67", "JBMIAProjectorLink") == "5d8409bc1c3fa39749434aa3a5c38682"


def test_encode_command() -> None:
    assert encode_command("POWR", "1") == b"%1POWR 1\r"
    assert encode_command("INPT", "?") == b"%1INPT ?\r"
    for body, param in [("powr", "1"), ("POW", "1"), ("POWR", ""), ("POWR", "1\r"), ("POWR", "é")]:
        with pytest.raises(ValueError):
            encode_command(body, param)


def test_parse_reply_and_errors() -> None:
    assert parse_reply(b"%1POWR=OK\r") == ("POWR", "OK")
    assert parse_reply(b"\n%1NAME=Room 101\r") == ("NAME", "Room 101")  # LF left over from CR LF
    assert parse_reply(b"%1NAME=\r") == ("NAME", "")
    for code in ("ERR1", "ERR2", "ERR3", "ERR4"):
        with pytest.raises(PjlinkCommandError) as caught:
            parse_reply(f"%1INPT={code}\r".encode())
        assert (caught.value.command, caught.value.code) == ("INPT", code)
    with pytest.raises(PjlinkAuthError):
        parse_reply(b"PJLINK ERRA\r")
    for junk in [b"", b"\r", b"%1POWR\r", b"%2POWR=1\r", b"%1powr=1\r", b"%1POWR=a\x00b\r",
                 b"%1NAME=" + b"x" * 140 + b"\r", b"PJLINK 0\r"]:
        with pytest.raises(PjlinkProtocolError):
            parse_reply(junk)


def test_parse_greeting() -> None:
    assert parse_greeting(b"PJLINK 0\r") is None
    assert parse_greeting(b"PJLINK 1 498e4a67\r") == "498e4a67"
    with pytest.raises(PjlinkAuthError):
        parse_greeting(b"PJLINK ERRA\r")
    for junk in [b"PJLINK 2\r", b"PJLINK 1 \r", b"HTTP/1.1 400\r", b""]:
        with pytest.raises(PjlinkProtocolError):
            parse_greeting(junk)


def test_parse_values() -> None:
    assert [parse_power(c) for c in "0123"] == ["off", "on", "cooling", "warming"]
    assert parse_lamps("1234 1") == [(1234, True)]
    assert parse_lamps("10 0 99999 1") == [(10, False), (99999, True)]
    assert parse_errors("012000") == {"fan": "ok", "lamp": "warning", "temperature": "error",
                                      "cover": "ok", "filter": "ok", "other": "ok"}
    for parse, junk in [(parse_power, "4"), (parse_lamps, "12"), (parse_lamps, "12 2"),
                        (parse_lamps, "\uff11\uff12 1"), (parse_errors, "00000"), (parse_errors, "000003")]:
        with pytest.raises(PjlinkProtocolError):
            parse(junk)


def _only_pjlink_errors(line: bytes) -> None:
    try:
        body, data = parse_reply(line)
    except PjlinkError:
        return
    assert len(body) == 4 and isinstance(data, str)


@settings(database=None, max_examples=500)
@given(st.binary(max_size=300))
def test_parse_reply_raises_only_pjlink_errors_on_any_bytes(line: bytes) -> None:
    _only_pjlink_errors(line)


@settings(database=None, max_examples=500)
@given(st.binary(max_size=6), st.sampled_from([b"=", b" ", b""]), st.binary(max_size=140),
       st.sampled_from([b"\r", b"\r\n", b""]))
def test_parse_reply_raises_only_pjlink_errors_on_near_replies(
    body: bytes, sep: bytes, data: bytes, end: bytes
) -> None:
    _only_pjlink_errors(b"%1" + body + sep + data + end)


# --- client against the simulated projector ------------------------------------------------------


async def test_power_on_warms_up_then_off_cools_down(projector: Factory) -> None:
    sim, port = await projector(**FAST)
    client = PjlinkClient("127.0.0.1", port, timeout_s=2)
    assert await client.power() == "off"
    await client.power_on()
    started = time.monotonic()
    assert await client.power() == "warming"
    with pytest.raises(PjlinkCommandError) as caught:
        await client.power_off()  # like many projectors: not while warming up
    assert caught.value.code == "ERR3"
    await wait_for_power(client, "on")
    assert time.monotonic() - started >= 0.2
    await client.power_off()
    assert await client.power() == "cooling"
    with pytest.raises(PjlinkCommandError) as caught:
        await client.power_on()
    assert caught.value.code == "ERR3"
    await wait_for_power(client, "off")
    assert sim.power == "off"
    assert client.stats.errors == 2 and client.stats.timeouts == 0
    assert client.stats.connections == sim.connections  # one connection per call


async def test_input_set_and_query(projector: Factory) -> None:
    sim, port = await projector(warm_up_s=0.05)
    client = PjlinkClient("127.0.0.1", port, timeout_s=2)
    with pytest.raises(PjlinkCommandError) as caught:
        await client.input()  # standby: inputs are unavailable
    assert caught.value.code == "ERR3"
    assert (await client.status()).input is None
    await client.power_on()
    await wait_for_power(client, "on")
    await client.set_input("31")
    assert await client.input() == "31"
    assert sim.input == "31"
    with pytest.raises(PjlinkCommandError) as caught:
        await client.set_input("59")  # well-formed, but the projector has no such input
    assert caught.value.code == "ERR2"
    connections = sim.connections
    for bad in ("99", "1", "3A", "0", " 31"):
        with pytest.raises(ValueError):
            await client.set_input(bad)
    assert sim.connections == connections  # rejected before connecting
    assert await client.input() == "31"


async def test_lamp_hours_grow_while_on(projector: Factory) -> None:
    _, port = await projector(warm_up_s=0.05, lamp_hour_s=0.05, lamp_hours=1200)
    client = PjlinkClient("127.0.0.1", port, timeout_s=2)
    assert await client.lamps() == [(1200, False)]
    await client.power_on()
    await asyncio.sleep(0.4)
    [(hours, lit)] = await client.lamps()
    assert lit and 1205 <= hours <= 1240
    status = await client.status()
    assert status.lamp_hours is not None and status.lamp_hours >= hours


async def test_two_lamps_and_no_lamp(projector: Factory) -> None:
    _, port = await projector(lamp_count=2, lamp_hours=7)
    assert await PjlinkClient("127.0.0.1", port, timeout_s=2).lamps() == [(7, False), (7, False)]
    _, port = await projector(lamp_count=0)  # laser: ERR1 to LAMP
    client = PjlinkClient("127.0.0.1", port, timeout_s=2)
    with pytest.raises(PjlinkCommandError) as caught:
        await client.lamps()
    assert caught.value.code == "ERR1"
    assert (await client.status()).lamp_hours is None


async def test_error_status(projector: Factory) -> None:
    sim, port = await projector()
    client = PjlinkClient("127.0.0.1", port, timeout_s=2)
    assert set((await client.errors()).values()) == {"ok"}
    sim.set_error("filter", "warning")
    sim.set_error("lamp", "error")
    errors = await client.errors()
    assert errors == {"fan": "ok", "lamp": "error", "temperature": "ok",
                      "cover": "ok", "filter": "warning", "other": "ok"}
    with pytest.raises(PjlinkCommandError) as caught:
        await client.power_on()  # a dead lamp: projector failure
    assert caught.value.code == "ERR4"


async def test_status_and_info_use_one_connection(projector: Factory) -> None:
    sim, port = await projector(name="Room 101", lamp_hours=42)
    client = PjlinkClient("127.0.0.1", port, timeout_s=2)
    status = await client.status()
    assert status == ProjectorStatus(power="off", input=None, lamp_hours=42,
                                     errors=dict.fromkeys(status.errors, "ok"))
    assert len(status.errors) == 6
    assert await client.info() == {"name": "Room 101", "manufacturer": "CampusEdge",
                                   "product": "SIM-PJ1", "class": "1"}
    assert sim.connections == 2
    assert client.stats.commands == 8


async def test_auth_with_the_right_password(projector: Factory) -> None:
    sim, port = await projector(password="JBMIAProjectorLink", **FAST)
    client = PjlinkClient("127.0.0.1", port, password="JBMIAProjectorLink", timeout_s=2)
    await client.power_on()
    status = await client.status()  # four commands, only the first carries the digest
    assert status.power == "warming"
    assert sim.auth_failures == 0 and client.stats.auth_failures == 0


async def test_wrong_password_fails_once_without_retrying(projector: Factory) -> None:
    sim, port = await projector(password="right")
    client = PjlinkClient("127.0.0.1", port, password="wrong", timeout_s=2)
    with pytest.raises(PjlinkAuthError):
        await client.power()
    assert sim.connections == 1 and sim.auth_failures == 1
    assert client.stats.auth_failures == 1 and client.stats.errors == 0


async def test_missing_password_fails_before_sending(projector: Factory) -> None:
    sim, port = await projector(password="right")
    client = PjlinkClient("127.0.0.1", port, timeout_s=2)
    with pytest.raises(PjlinkAuthError, match="none is configured"):
        await client.status()
    assert sim.connections == 1 and sim.auth_failures == 0


async def test_projector_that_refuses_auth(projector: Factory) -> None:
    sim, port = await projector(password="right")
    sim.refuse_auth = True
    client = PjlinkClient("127.0.0.1", port, password="right", timeout_s=2)
    with pytest.raises(PjlinkAuthError):
        await client.info()
    assert sim.auth_failures == 1


async def test_silent_projector_times_out(projector: Factory) -> None:
    sim, port = await projector()
    sim.silent = True
    client = PjlinkClient("127.0.0.1", port, timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(PjlinkTimeout):
        await client.power()
    assert 0.45 <= time.monotonic() - started < 3 * 0.5 + 1.0  # one timeout, not a hang
    assert client.stats.timeouts == 1 and client.stats.errors == 0


async def test_projector_that_greets_then_stalls_times_out() -> None:
    async def greet_only(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"PJLINK 0\r")
        await reader.read()  # swallows the command, never answers
        writer.close()

    server = await asyncio.start_server(greet_only, "127.0.0.1", 0)
    try:
        client = PjlinkClient("127.0.0.1", server.sockets[0].getsockname()[1], timeout_s=0.4)
        started = time.monotonic()
        with pytest.raises(PjlinkTimeout, match="reply to POWR"):
            await client.power_on()
        assert time.monotonic() - started < 3 * 0.4 + 1.0  # one timeout, not a hang
    finally:
        server.close()


async def test_calls_take_turns_and_close_aborts(projector: Factory) -> None:
    sim, port = await projector()
    sim.silent = True
    client = PjlinkClient("127.0.0.1", port, timeout_s=0.3)
    calls = [asyncio.create_task(client.power()) for _ in range(2)]
    await wait_until(lambda: sim.connections >= 1)
    assert sim.connections == 1  # the second call waits for the first (for its 0.3 s timeout)
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert [type(r) for r in results] == [PjlinkTimeout, PjlinkTimeout]
    assert sim.connections == 2
    slow = PjlinkClient("127.0.0.1", port, timeout_s=10)
    call = asyncio.create_task(slow.power())
    await asyncio.sleep(0.1)
    await slow.close()
    async with asyncio.timeout(1):
        with pytest.raises(PjlinkConnectionError):
            await call
    with pytest.raises(PjlinkConnectionError, match="closed"):
        await slow.power()


@pytest.mark.parametrize(("host", "port"), [("a..b", 4352), ("x" * 300, 4352), ("127.0.0.1", 70000)])
async def test_an_address_that_cannot_be_tried_is_a_connection_error(host: str, port: int) -> None:
    # open_connection raises UnicodeError (IDNA) or OverflowError for these, not OSError.
    client = PjlinkClient(host, port, timeout_s=1)
    with pytest.raises(PjlinkConnectionError, match="bad address"):
        await client.power()
    assert client.stats.errors == 1


async def test_nothing_listening_is_a_connection_error() -> None:
    client = PjlinkClient("127.0.0.1", free_port(), timeout_s=1)
    with pytest.raises(PjlinkConnectionError):
        await client.power()
    assert client.stats.errors == 1


@pytest.mark.parametrize("host", ["::1", "[::1]"])
async def test_projector_on_ipv6_loopback(projector: Factory, host: str) -> None:
    _, port = await projector("::1", password="pw")
    client = PjlinkClient(host, port, password="pw", timeout_s=2)
    assert await client.power() == "off"
    assert client.name == f"[::1]:{port}"


async def test_garbage_does_not_kill_the_server(projector: Factory) -> None:
    sim, port = await projector()
    # Lines with a command header get an ERR reply and the connection stays open.
    replies = await raw_exchange(port, [b"%1FOOO ?\r", b"%1POWR\r", b"%1POWR 7\r", b"%1LAMP 1\r\n",
                                        b"%1POWR ?\r", b"\xff\xfe\x00garbage\r"])
    assert replies == (b"PJLINK 0\r%1FOOO=ERR1\r%1POWR=ERR2\r%1POWR=ERR2\r%1LAMP=ERR2\r"
                       b"%1POWR=0\r")  # the garbage line ended the connection
    assert sim.garbage_lines == 1
    # A flood without CR is dropped; so is a client that vanishes mid-line.
    assert await raw_exchange(port, [b"%1NAME " + b"x" * 5000]) == b"PJLINK 0\r"
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"%1PO")
    writer.transport.abort()
    client = PjlinkClient("127.0.0.1", port, timeout_s=2)
    assert await client.power() == "off"
    assert sim.connections in (3, 4)  # the aborted connection may be gone before it is accepted


async def test_idle_connections_are_closed(projector: Factory) -> None:
    _, port = await projector(idle_timeout_s=0.3)
    started = time.monotonic()
    assert await raw_exchange(port, []) == b"PJLINK 0\r"
    assert 0.25 <= time.monotonic() - started < 3 * 0.3 + 1.0  # raw_exchange itself gives up at 2 s
