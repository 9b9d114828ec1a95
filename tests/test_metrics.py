"""Health JSON and Prometheus metrics of a real running gateway, and the console routes that serve them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge.app import Gateway
from edge.config_loader import load_config
from edge.config_ops import MetricsConfig
from edge.console import create_app
from edge.console.routes_metrics import allowed_address
from edge.disk_guard import DiskGuard
from edge.health_report import health_report
from edge.prom_metrics import render
from edge.store import Store
from edge.supervisor import Service
from edge.users import Role, hash_password
from tests.conftest import Mosquitto, free_port, write_config
from tests.console.harness import FAST, PASSWORD
from tests.gateway_harness import gateway_config_path

CLIP = Path(__file__).parent / "fixtures" / "vtest-cut.mp4"
FAST_RESTARTS = {"max_restarts": 3, "window_s": 60, "backoff_initial_s": 0.01, "backoff_max_s": 0.02}


class Flaky:
    """A service that crashes once, as a lost serial port would, then runs."""

    name = "flaky"

    def __init__(self) -> None:
        self.runs = 0

    async def run(self, ready: Callable[[], None]) -> None:
        self.runs += 1
        if self.runs == 1:
            raise OSError("serial port vanished")
        ready()
        await asyncio.Event().wait()


class GatewayWithFlaky(Gateway):
    def build_services(self, store: Store) -> list[Service]:
        return [*super().build_services(store), Flaky()]


def samples(exposition: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a text exposition, by name and label set."""
    out = {}
    for family in text_string_to_metric_families(exposition.decode()):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(parsed: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return parsed[(name, frozenset(labels.items()))]


async def wait_for(check: Callable[[], bool], timeout: float = 15) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.05)


async def test_a_degraded_gateway_reports_why_and_its_metrics_match(tmp_path: Path,
                                                                    mosquitto: Mosquitto) -> None:
    topic = f"z2m/{tmp_path.name}/climate"
    devices = [{"id": "sim1", "type": "simulated", "room_id": "r1", "interval_s": 0.2},
               {"id": "climate1", "type": "mqtt", "room_id": "r1", "topic": topic, "offline_after_s": 1.0,
                "values": [{"metric": "temperature", "path": "t", "unit": "°C"}]}]
    cams = [{"id": "good", "room_id": "r1", "url": f"file:{CLIP}", "detect_fps": 4},
            {"id": "dead", "room_id": "r1", "url": f"http://127.0.0.1:{free_port()}/video.mjpg",
             "open_timeout_s": 1, "read_timeout_s": 1}]
    uplink = {"url": f"mqtt://127.0.0.1:{free_port()}", "reconnect_initial_s": 0.2, "reconnect_max_s": 0.5}
    path = gateway_config_path(tmp_path, mosquitto, devices, cameras=cams, uplink=uplink,
                               supervisor=FAST_RESTARTS)
    gateway = GatewayWithFlaky(load_config(path))
    ready = asyncio.Event()
    task = asyncio.create_task(gateway.run(on_ready=lambda _: ready.set()))
    try:
        async with asyncio.timeout(20):
            await ready.wait()
        await wait_for(lambda: gateway.link is not None and gateway.link.connected)
        async with aiomqtt.Client(mosquitto.host, mosquitto.port) as client:
            await client.publish(topic, json.dumps({"t": 21.5}).encode())
        health = gateway.health
        assert health is not None
        await wait_for(lambda: health.online.get("climate1") is True)
        await wait_for(lambda: health.online.get("climate1") is False)  # silent for offline_after_s
        good, dead = gateway.cameras
        await wait_for(lambda: len(good.inference_times) >= 3 and dead.reader is not None
                       and dead.reader.health().last_error is not None)
        report = await health_report(gateway)
    finally:
        gateway.request_stop()
        async with asyncio.timeout(15):
            await task

    assert report["status"] == "degraded"
    problems = "\n".join(report["problems"])
    assert "service flaky crashed" in problems and "camera dead is offline" in problems, problems
    assert "uplink to the campus platform is not connected" in problems and "camera good" not in problems
    (flaky,) = [s for s in report["services"] if s["name"] == "flaky"]
    assert flaky == {"name": "flaky", "state": "running", "restarts": 1,
                     "last_error": "OSError: serial port vanished"}
    assert report["devices"] == {"sim1": True, "climate1": False}
    assert report["local_mqtt"] == {"connected": True}
    assert report["uplink"]["connected"] is False and "classes" in report["uplink"]["outbox"]
    good_cam = report["cameras"]["good"]
    assert good_cam["online"] and good_cam["fps_in"] > 0 and good_cam["problem"] is None
    assert 0 < good_cam["inference_ms"]["p50"] <= good_cam["inference_ms"]["p99"]
    assert report["cameras"]["dead"]["online"] is False and report["cameras"]["dead"]["problem"]
    assert report["store"]["readings"] > 0 and report["store"]["db_bytes"] > 0
    assert report["disk"]["free_bytes"] > 0 and report["uptime_s"] > 0
    assert report["bus"]["subscribers"]["recorder"]["maxsize"] == 20_000

    parsed = samples(render(report))
    assert value(parsed, "edge_up") == 0
    ident = {"version": report["version"], "site_id": "test-site", "gateway_id": "gw-test"}
    assert value(parsed, "edge_info", **ident) == 1
    assert value(parsed, "edge_service_restarts_total", service="flaky") == 1
    assert value(parsed, "edge_service_up", service="flaky") == 1
    assert value(parsed, "edge_device_online", device="climate1") == 0
    assert value(parsed, "edge_device_online", device="sim1") == 1
    assert value(parsed, "edge_camera_online", camera="dead") == 0
    assert value(parsed, "edge_camera_online", camera="good") == 1
    assert value(parsed, "edge_camera_fps", camera="good", kind="input") == good_cam["fps_in"]
    p99 = value(parsed, "edge_inference_latency_seconds", camera="good", quantile="0.99")
    assert p99 == pytest.approx(good_cam["inference_ms"]["p99"] / 1000)
    assert value(parsed, "edge_mqtt_connected", link="local") == 1
    assert value(parsed, "edge_mqtt_connected", link="uplink") == 0
    for cls, backlog in report["uplink"]["outbox"]["classes"].items():
        assert value(parsed, "edge_uplink_backlog_messages", **{"class": cls}) == backlog["count"]
    assert value(parsed, "edge_uplink_delivered_total") == 0
    assert value(parsed, "edge_store_rows", table="readings") == report["store"]["readings"]
    assert value(parsed, "edge_bus_queue_depth", subscriber="recorder") >= 0
    assert value(parsed, "edge_disk_free_bytes") == report["disk"]["free_bytes"]
    assert report["disk"]["guard"]["level"] == "ok" and value(parsed, "edge_disk_guard_level") == 0
    assert value(parsed, "process_resident_memory_bytes") > 0


async def test_low_disk_makes_the_gateway_degraded_and_shows_in_the_metrics(tmp_path: Path) -> None:
    gateway = Gateway(load_config(write_config(tmp_path)))
    gateway.disk_guard = DiskGuard(tmp_path, min_free_mb=200, free_bytes=lambda _: 10 * 1024 * 1024)
    assert gateway.disk_guard.check() == "critical"  # 10 MB free: under a quarter of 200 MB
    gateway.disk_guard.count_drop("readings", 7)
    report = await health_report(gateway)
    assert any("disk space is critical" in p for p in report["problems"])
    parsed = samples(render(report))
    assert value(parsed, "edge_disk_guard_level") == 2
    assert value(parsed, "edge_disk_guard_dropped_total", what="readings") == 7


async def test_a_gateway_not_yet_run_is_starting(tmp_path: Path) -> None:
    report = await health_report(Gateway(load_config(write_config(tmp_path))))
    assert report["status"] == "starting" and report["services"] == [] and report["store"] is None
    assert report["devices"] == {"sim1": None} and report["uplink"] is None
    assert report["disk"]["free_bytes"] > 0  # data_dir does not exist yet: its parent's file system
    parsed = samples(render(report))
    assert value(parsed, "edge_up") == 0
    assert ("edge_device_online", frozenset({("device", "sim1")})) not in parsed  # no status yet


def test_allow_list_matching() -> None:
    nets = ["127.0.0.1/32", "::1/128", "10.0.0.0/8"]
    assert allowed_address("10.1.2.3", nets) and allowed_address("::1", nets)
    assert allowed_address("::ffff:127.0.0.1", nets)  # an IPv4 client on a dual-stack socket
    assert not allowed_address("192.168.0.9", nets) and not allowed_address("fe80::1%eth0", nets)
    assert not allowed_address("testclient", nets) and not allowed_address(None, nets)


async def test_console_serves_metrics_by_address_or_session_and_status_to_viewers(tmp_path: Path) -> None:
    # A crashing service, so the served numbers are not all zeros.
    gateway = GatewayWithFlaky(load_config(write_config(tmp_path, supervisor=FAST_RESTARTS)))
    ready = asyncio.Event()
    task = asyncio.create_task(gateway.run(on_ready=lambda _: ready.set()))
    try:
        async with asyncio.timeout(20):
            await ready.wait()
        assert gateway.store is not None and gateway.alerts is not None and gateway.health is not None
        health = gateway.health
        await wait_for(lambda: health.online.get("sim1") is True)
        await gateway.store.add_user("vera", Role.VIEWER, hash_password(PASSWORD, FAST), "test")
        store, alerts = gateway.store, gateway.alerts

        def app(health: Callable[[], Awaitable[dict[str, Any]]] | None = None, **metrics: Any) -> Any:
            config = gateway.config.model_copy(update={"metrics": MetricsConfig(**metrics)})
            return create_app(store=store, alerts=alerts, bus=gateway.bus, snapshots=None,
                              clock=gateway.clock, config=config, hasher=FAST, health=health)

        def client(application: Any, host: str) -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=application, client=(host, 1234))
            return httpx.AsyncClient(transport=transport, base_url="http://edge")

        def report() -> Awaitable[dict[str, Any]]:
            return health_report(gateway)

        lan = app(report, allow=["10.0.0.0/8"])
        async with client(lan, "10.0.0.5") as scraper:
            response = await scraper.get("/metrics")
            assert response.status_code == 200, response.text
            assert response.headers["content-type"].startswith("text/plain; version=")
            parsed = samples(response.content)
            assert value(parsed, "edge_service_restarts_total", service="flaky") == 1
            assert value(parsed, "edge_device_online", device="sim1") == 1
            assert value(parsed, "edge_up") == 0  # the crash is within supervisor.window_s
            assert (await scraper.get("/api/status")).status_code == 401  # the JSON needs a session
        async with client(lan, "192.168.7.7") as outsider:
            assert (await outsider.get("/metrics")).status_code == 401
            login = await outsider.post("/api/login", json={"username": "vera", "password": PASSWORD})
            assert login.status_code == 200, login.text
            assert (await outsider.get("/metrics")).status_code == 200
            status = (await outsider.get("/api/status")).json()
            (flaky,) = [s for s in status["services"] if s["name"] == "flaky"]
            assert flaky["restarts"] == 1 and status["devices"] == {"sim1": True}
            assert status["status"] == "degraded"
            assert status["problems"][0].startswith("service flaky crashed")
        async with client(app(report), "10.0.0.5") as default_allow:
            assert (await default_allow.get("/metrics")).status_code == 401  # default: loopback only
        async with client(app(report), "::1") as local:
            assert (await local.get("/metrics")).status_code == 200
        async with client(app(report, enabled=False), "127.0.0.1") as off:
            assert (await off.get("/metrics")).status_code == 404
        async with client(app(None), "127.0.0.1") as unwired:
            assert (await unwired.get("/metrics")).status_code == 503
            assert (await unwired.get("/api/health")).json() == {"status": "ok"}
    finally:
        gateway.request_stop()
        async with asyncio.timeout(15):
            await task
