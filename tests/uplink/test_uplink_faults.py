"""Uplink faults with real Mosquitto processes: a broker SIGKILLed mid-stream, a black-holed network."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

from edge.app import Gateway
from edge.events import Envelope
from tests.conftest import Mosquitto, free_port, start_mosquitto
from tests.gateway_harness import Watcher, running_gateway, watching
from tests.tcp_proxy import TcpProxy
from tests.uplink.test_uplink_flow import BASE, panic, uplink_config


async def record_steadily(gateway: Gateway, accepted: list[Envelope], every_s: float = 0.01) -> None:
    """Record a panic-shaped safety event every every_s until cancelled."""
    n = 0
    while True:
        n += 1
        accepted.append(await gateway.record_event(panic(n)))
        await asyncio.sleep(every_s)


@contextlib.asynccontextmanager
async def recording(gateway: Gateway) -> AsyncIterator[list[Envelope]]:
    """Events flow while the block runs; the list holds every one the store accepted."""
    accepted: list[Envelope] = []
    task = asyncio.create_task(record_steadily(gateway, accepted))
    try:
        yield accepted
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def arrived(watchers: list[Watcher], accepted: list[Envelope], timeout: float) -> set[str]:
    """Wait until every accepted event reached one of the watchers; return the ids that did."""
    wanted = {e.event.event_id for e in accepted}
    got: set[str] = set()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            while not wanted <= got:
                got = {b["event_id"] for w in watchers for b in w.json_on(f"{BASE}/event")}
                await asyncio.sleep(0.05)
    return got


async def test_a_broker_sigkilled_mid_stream_and_restarted_gets_every_event_without_a_seq_gap(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    central = start_mosquitto(tmp_path / "central")
    proxy = TcpProxy()
    port = await proxy.start("127.0.0.1", central.host, central.port, listen_port=free_port())
    config = uplink_config(tmp_path, mosquitto, f"mqtt://127.0.0.1:{port}")
    before = after = None
    try:
        async with contextlib.AsyncExitStack() as stack:
            before = await stack.enter_async_context(watching(central, f"{BASE}/event"))
            gateway = await stack.enter_async_context(running_gateway(config))
            async with recording(gateway) as accepted:
                await asyncio.sleep(1.0)
                central.proc.send_signal(signal.SIGKILL)  # in-flight messages die with it
                central.proc.wait()
                await proxy.stop()  # nothing listens until the broker and the watcher are back
                await asyncio.sleep(1.0)  # events keep being accepted meanwhile
                central = start_mosquitto(tmp_path / "central2", port=central.port)
                after = await stack.enter_async_context(watching(central, f"{BASE}/event"))
                proxy = TcpProxy()
                await proxy.start("127.0.0.1", central.host, central.port, listen_port=port)
                await asyncio.sleep(1.0)
            got = await arrived([before, after], accepted, timeout=30)
            assert {e.event.event_id for e in accepted} <= got
            seqs = {b["seq"] for w in (before, after) for b in w.json_on(f"{BASE}/event")}
            assert seqs >= set(range(1, max(e.seq for e in accepted) + 1))  # no gap
            assert gateway.uplink is not None and gateway.uplink.link.stats.connects >= 2
            assert any(b["historical"] for b in after.json_on(f"{BASE}/event"))  # the backlog was replayed
    finally:
        await proxy.stop()
        central.stop()


async def test_a_blackholed_network_is_noticed_within_one_and_a_half_keepalives_and_recovers(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    central = start_mosquitto(tmp_path / "central")
    proxy = TcpProxy()
    port = await proxy.start("127.0.0.1", central.host, central.port)
    keepalive = 2
    config = uplink_config(tmp_path, mosquitto, f"mqtt://127.0.0.1:{port}", keepalive_s=keepalive)
    try:
        async with watching(central, f"{BASE}/event") as watcher, running_gateway(config) as gateway:
            assert gateway.uplink is not None
            link = gateway.uplink.link
            async with asyncio.timeout(10):
                while link.state != "connected":
                    await asyncio.sleep(0.02)
            async with recording(gateway) as accepted:
                await asyncio.sleep(0.5)
                proxy.blackhole()  # packets vanish; the TCP connection stays open
                cut = time.monotonic()
                async with asyncio.timeout(keepalive * 3):
                    while link.state == "connected":
                        await asyncio.sleep(0.02)
                noticed_s = time.monotonic() - cut
                await asyncio.sleep(0.5)
                proxy.restore()
                async with asyncio.timeout(15):
                    while link.state != "connected":
                        await asyncio.sleep(0.05)
                await asyncio.sleep(0.5)
            got = await arrived([watcher], accepted, timeout=30)
        assert noticed_s <= 1.5 * keepalive, noticed_s
        assert {e.event.event_id for e in accepted} <= got
    finally:
        await proxy.stop()
        central.stop()
