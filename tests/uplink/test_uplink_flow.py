"""The uplink through the whole gateway against real Mosquitto brokers: contract, backlog, order."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from edge.events import Occupancy, SafetyEvent, Severity
from tests.conftest import Mosquitto, free_port, start_mosquitto
from tests.gateway_harness import running_gateway, watching
from tests.tcp_proxy import TcpProxy
from tests.uplink.schemas import validate

BASE = "campus/v1/test-site/gw-test"


def uplink_config(tmp_path: Path, local: Mosquitto, url: str, **uplink: Any) -> Path:
    from tests.gateway_harness import gateway_config_path

    settings = {"url": url, "keepalive_s": 5, "reconnect_initial_s": 0.2, "reconnect_max_s": 0.5,
                "telemetry_interval_s": 1, **uplink}
    return gateway_config_path(tmp_path, local, [{"id": "sim1", "type": "simulated", "room_id": "r1",
                                                  "interval_s": 0.2}], uplink=settings)


def panic(n: int) -> SafetyEvent:
    return SafetyEvent("panic_button", Severity.CRITICAL, time.time(), "device:sim1", "r1",
                       {"device_id": "sim1", "n": n})


def kinds_seen(messages: list[tuple[str, bytes, bool]]) -> set[str]:
    return {topic.removeprefix(BASE + "/") for topic, _, _ in messages}


async def test_status_events_occupancy_and_telemetry_arrive_and_match_the_schemas(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    central = start_mosquitto(tmp_path / "central")
    try:
        async with watching(central, f"{BASE}/#") as watcher, \
                running_gateway(uplink_config(tmp_path, mosquitto, central.url)) as gateway:
            assert gateway.uplink is not None
            status = await watcher.wait_json(f"{BASE}/status", lambda b: b["state"] == "online", timeout=10)
            envelope = await gateway.record_event(panic(1))
            gateway.bus.publish(Occupancy("r1", 3, time.time(), camera_id="cam1"))
            event_id = envelope.event.event_id
            event = await watcher.wait_json(f"{BASE}/event", lambda b: b["event_id"] == event_id)
            occupancy = await watcher.wait_json(f"{BASE}/occupancy", lambda b: b["count"] == 3)
            telemetry = await watcher.wait_json(f"{BASE}/telemetry", timeout=10)
        assert event["seq"] == envelope.seq and event["historical"] is False
        assert event["type"] == "panic_button" and event["site_id"] == "test-site"
        assert telemetry["device_id"] == "sim1" and telemetry["metrics"]
        for metric in telemetry["metrics"].values():
            assert metric["min"] <= metric["avg"] <= metric["max"] and metric["count"] >= 1
        # The panic press also raised an alert: its transition is a safety event too.
        for topic, payload, _ in watcher.messages:
            kind = topic.removeprefix(BASE + "/")
            validate(kind, json.loads(payload))
        validate("status", status)
        assert {"status", "event", "occupancy", "telemetry"} <= kinds_seen(watcher.messages)
        assert occupancy["camera_id"] == "cam1"
        # A clean stop says offline itself (retained).
        async with watching(central, f"{BASE}/status") as after:
            offline = await after.wait_json(f"{BASE}/status")
        assert offline["state"] == "offline"
    finally:
        central.stop()


async def test_a_central_broker_unreachable_at_start_gets_the_whole_backlog_in_order(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    central = start_mosquitto(tmp_path / "central")
    proxy = TcpProxy()
    port = free_port()
    try:
        async with watching(central, f"{BASE}/event") as watcher, \
                running_gateway(uplink_config(tmp_path, mosquitto, f"mqtt://127.0.0.1:{port}")) as gateway:
            accepted = [await gateway.record_event(panic(n)) for n in range(150)]
            await asyncio.sleep(0.5)
            assert not watcher.messages  # nothing can have gone out: there is no way to the broker
            await proxy.start("127.0.0.1", central.host, central.port, listen_port=port)
            async with asyncio.timeout(30):
                while len({b["event_id"] for b in watcher.json_on(f"{BASE}/event")}
                          & {e.event.event_id for e in accepted}) < len(accepted):
                    await asyncio.sleep(0.1)
            assert gateway.uplink is not None
            async with asyncio.timeout(5):  # counted once the rows are marked delivered
                while gateway.uplink.metrics.replayed < len(accepted):
                    await asyncio.sleep(0.02)
        bodies = watcher.json_on(f"{BASE}/event")
        ours = [b for b in bodies if b["type"] == "panic_button"]
        assert all(b["historical"] for b in ours)
        seqs = [b["seq"] for b in bodies]
        assert seqs == sorted(seqs)  # one class, replayed in seq order
        assert [b["seq"] for b in ours] == [e.seq for e in accepted]
    finally:
        await proxy.stop()
        central.stop()


async def test_a_live_event_overtakes_a_rate_limited_backlog(tmp_path: Path, mosquitto: Mosquitto) -> None:
    central = start_mosquitto(tmp_path / "central")
    proxy = TcpProxy()
    port = free_port()
    config = uplink_config(tmp_path, mosquitto, f"mqtt://127.0.0.1:{port}", replay_rate=200, inflight=50)
    try:
        async with watching(central, f"{BASE}/event") as watcher, running_gateway(config) as gateway:
            backlog = [await gateway.record_event(panic(n)) for n in range(600)]  # 3 s of replay
            await proxy.start("127.0.0.1", central.host, central.port, listen_port=port)
            assert gateway.uplink is not None
            async with asyncio.timeout(10):
                while not gateway.uplink.metrics.replayed:
                    await asyncio.sleep(0.02)
            live = await gateway.record_event(panic(9999))
            got = await watcher.wait_json(f"{BASE}/event", lambda b: b["event_id"] == live.event.event_id)
            replayed_before_live = len([b for b in watcher.json_on(f"{BASE}/event") if b["historical"]])
            async with asyncio.timeout(30):
                while len([b for b in watcher.json_on(f"{BASE}/event") if b["historical"]]) < len(backlog):
                    await asyncio.sleep(0.1)
        assert got["historical"] is False
        assert replayed_before_live < len(backlog)  # it did not wait for the backlog to drain
    finally:
        await proxy.stop()
        central.stop()
