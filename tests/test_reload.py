"""Config reload on SIGHUP: the pure plan, and a real gateway taking new config without a restart."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge.app import Gateway
from edge.config import EdgeConfig
from edge.events import SafetyEvent, Severity
from edge.reload import device_units, effective_config, plan_reload
from edge.store import DB_FILENAME
from tests.conftest import Mosquitto, edge_command, edge_env, free_port, start_mosquitto
from tests.e2e.test_daemon import notify_socket, receive_until
from tests.gateway_harness import gateway_config_path, running_gateway, watching

SIM1 = {"id": "sim1", "type": "simulated", "room_id": "r1", "interval_s": 0.2}
SIM2 = {"id": "sim2", "type": "simulated", "room_id": "r1", "interval_s": 0.2}
BASE: dict[str, Any] = {"site_id": "s", "gateway_id": "g", "rooms": [{"id": "r1"}], "devices": [SIM1]}


def config(**changes: Any) -> EdgeConfig:
    return EdgeConfig.model_validate({**BASE, **changes})


def edit(path: Path, **changes: Any) -> None:
    """Rewrite a config file with some top-level keys replaced."""
    data = yaml.safe_load(path.read_text())
    data.update(changes)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


async def audit_actions(gateway: Gateway) -> list[tuple[str, dict[str, Any]]]:
    assert gateway.store is not None
    return [(r["action"], r["detail"]) for r in reversed(await gateway.store.audit_page(100))]


# --- the plan (pure) ---

def test_unchanged_config_plans_nothing() -> None:
    plan = plan_reload(config(), config())
    assert plan.empty and not plan.local and not plan.uplink and not plan.units_added


def test_alerts_change_is_live_and_touches_no_service() -> None:
    plan = plan_reload(config(), config(alerts={"escalate_after_s": 60}))
    assert plan.changed == ("alerts",) and plan.alerts and not plan.needs_restart
    assert not (plan.local or plan.uplink or plan.console or plan.rooms_view)
    assert not (plan.units_added or plan.units_removed or plan.units_changed)


def test_devices_are_diffed_by_service_unit() -> None:
    modbus = {"id": "m1", "type": "modbus", "room_id": "r1", "port": "/dev/ttyUSB0", "unit_id": 1,
              "registers": [{"metric": "temperature", "address": 0}]}
    old = config(devices=[SIM1, modbus])
    new = config(devices=[{**SIM1, "interval_s": 1.0}, SIM2, {**modbus, "id": "m2", "unit_id": 2}])
    assert set(device_units(new)) == {"sim:sim1", "sim:sim2", "modbus:/dev/ttyUSB0"}
    plan = plan_reload(old, new)
    assert plan.units_added == ("sim:sim2",) and plan.units_removed == ()
    assert set(plan.units_changed) == {"sim:sim1", "modbus:/dev/ttyUSB0"}
    assert plan.rooms_view and not plan.local and not plan.uplink  # no uplink configured


def test_mqtt_sensors_need_a_fresh_local_link() -> None:
    sensor = {"id": "t1", "type": "mqtt", "room_id": "r1", "topic": "x/t1",
              "values": [{"metric": "temperature", "path": "t"}]}
    plan = plan_reload(config(), config(devices=[SIM1, sensor]))
    assert plan.local and not plan.broker and "mqtt-sensors" not in plan.units_added


def test_mqtt_change_restarts_the_embedded_broker_only_when_its_address_changes() -> None:
    keepalive = plan_reload(config(), config(mqtt={"local": {"keepalive_s": 60}}))
    assert keepalive.local and not keepalive.broker
    port = plan_reload(config(), config(mqtt={"local": {"embedded_port": 0}}))
    assert port.local and port.broker


def test_uplink_is_rebuilt_for_its_section_and_for_device_placement() -> None:
    uplink = {"url": "mqtt://127.0.0.1:1"}
    assert plan_reload(config(uplink=uplink), config(uplink={**uplink, "keepalive_s": 10})).uplink
    assert plan_reload(config(uplink=uplink), config(uplink=uplink, devices=[SIM1, SIM2])).uplink
    alerts_only = config(uplink=uplink, alerts={"escalate_after_s": 9})
    assert not plan_reload(config(uplink=uplink), alerts_only).uplink


def test_identity_and_files_need_a_restart_and_keep_their_old_values() -> None:
    old = config()
    new = config(gateway_id="other", supervisor={"max_restarts": 9}, log={"level": "debug"})
    plan = plan_reload(old, new)
    assert set(plan.needs_restart) == {"gateway_id", "supervisor"} and plan.log
    running = effective_config(old, new, plan)
    assert running.gateway_id == "g" and running.supervisor.max_restarts == old.supervisor.max_restarts
    assert running.log.level == "debug"


def test_retention_and_metrics_are_live() -> None:
    plan = plan_reload(config(), config(retention={"readings_days": 7}, metrics={"enabled": False}))
    assert set(plan.changed) == {"retention", "metrics"} and plan.needs_restart == ()
    assert not (plan.local or plan.uplink or plan.console or plan.units_changed)


# --- a real gateway, in-process ---

async def test_invalid_config_is_refused_and_everything_keeps_running(
        tmp_path: Path, mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture) -> None:
    path = gateway_config_path(tmp_path, mosquitto, [SIM1])
    async with running_gateway(path) as gateway:
        gateway.config_path = path
        link, before = gateway.link, gateway.config
        path.write_text(path.read_text() + "lgo: {}\n")
        with caplog.at_level(logging.ERROR):
            assert await gateway.reload() is False
        assert "lgo: unknown key" in caplog.text
        assert gateway.config is before and gateway.link is link
        assert gateway.supervisor is not None and gateway.supervisor.states["sim:sim1"].state == "running"
        action, detail = (await audit_actions(gateway))[-1]
        assert action == "config.reload_failed" and "lgo" in detail["problems"][0]


async def test_alerts_only_change_keeps_the_mqtt_link_and_its_connection(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    path = gateway_config_path(tmp_path, mosquitto, [SIM1])
    async with running_gateway(path) as gateway:
        gateway.config_path = path
        assert gateway.link is not None and gateway.alerts is not None
        link, connects, client = gateway.link, gateway.link.stats.connects, gateway.link._client
        edit(path, alerts={"escalate_after_s": 42, "rules": {"cooldown_s": 7}})
        assert await gateway.reload() is True
        assert gateway.alerts.book.escalate_after_s == 42 and gateway.alerts.engine.out.cooldown_s == 7
        assert gateway.link is link and link.stats.connects == connects and link._client is client
        assert link.state == "connected"
        action, detail = (await audit_actions(gateway))[-1]
        assert action == "config.reload" and detail["changed"] == ["alerts"]


async def test_log_level_change_takes_effect(tmp_path: Path, mosquitto: Mosquitto) -> None:
    path = gateway_config_path(tmp_path, mosquitto, [SIM1])
    root = logging.getLogger()
    level = root.level
    try:
        async with running_gateway(path) as gateway:
            gateway.config_path = path
            edit(path, log={"level": "error"})
            assert await gateway.reload() is True
            assert root.level == logging.ERROR
            edit(path, log={"level": "debug"})
            assert await gateway.reload() is True
            assert root.level == logging.DEBUG
    finally:
        root.setLevel(level)


async def test_device_added_then_removed_without_touching_the_others(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    path = gateway_config_path(tmp_path, mosquitto, [SIM1])
    prefix = f"t/{tmp_path.name}"
    async with watching(mosquitto, f"{prefix}/reading/#") as watcher, running_gateway(path) as gateway:
        gateway.config_path = path
        assert gateway.supervisor is not None and gateway.link is not None
        sim1 = next(s for s in gateway.services if s.name == "sim:sim1")
        link, connects = gateway.link, gateway.link.stats.connects
        edit(path, devices=[SIM1, SIM2])
        assert await gateway.reload() is True
        states = {s["name"]: s["state"] for s in gateway.supervisor.status()}
        assert states["sim:sim2"] == "running"
        await watcher.wait_json(f"{prefix}/reading/sim2/temperature", timeout=10)
        assert next(s for s in gateway.services if s.name == "sim:sim1") is sim1
        assert gateway.link is link and link.stats.connects == connects
        edit(path, devices=[SIM2])
        assert await gateway.reload() is True
        names = [s["name"] for s in gateway.supervisor.status()]
        assert "sim:sim1" not in names and "sim:sim2" in names
        assert all(s.name != "sim:sim1" for s in gateway.services)
        assert gateway.commands is not None  # commands to the removed device: refused as unknown
        assert not gateway.commands.knows("sim1") and gateway.commands.knows("sim2")
        assert gateway.rooms is not None and gateway.rooms in gateway.services


async def test_restart_only_section_is_kept_with_a_warning(
        tmp_path: Path, mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture) -> None:
    path = gateway_config_path(tmp_path, mosquitto, [SIM1])
    async with running_gateway(path) as gateway:
        gateway.config_path = path
        edit(path, gateway_id="renamed", devices=[SIM1, SIM2])
        with caplog.at_level(logging.WARNING):
            assert await gateway.reload() is True
        assert "gateway_id changed: needs a restart (systemctl restart edge)" in caplog.text
        assert gateway.config.gateway_id == "gw-test" and len(gateway.config.devices) == 2


async def test_two_reloads_in_a_row_are_serialised_and_none_runs_while_stopping(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    path = gateway_config_path(tmp_path, mosquitto, [SIM1])
    async with running_gateway(path) as gateway:
        gateway.config_path = path
        edit(path, devices=[SIM1, SIM2])
        assert await asyncio.gather(gateway.reload(), gateway.reload()) == [True, True]
        assert gateway.supervisor is not None
        names = [s["name"] for s in gateway.supervisor.status()]
        assert names.count("sim:sim2") == 1 and len(names) == len(set(names))
        gateway.supervisor.stop()
        assert await gateway.reload() is False


async def test_demo_gateway_without_a_file_ignores_sighup(
        tmp_path: Path, mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture) -> None:
    path = gateway_config_path(tmp_path, mosquitto, [SIM1])
    async with running_gateway(path) as gateway:
        with caplog.at_level(logging.WARNING):
            gateway._on_sighup()
        assert "no config file to reload" in caplog.text and gateway.reloads == 0


async def test_uplink_change_keeps_the_outbox_and_delivers_it(tmp_path: Path, mosquitto: Mosquitto) -> None:
    central = start_mosquitto(tmp_path / "central")
    uplink = {"url": f"mqtt://127.0.0.1:{free_port()}", "keepalive_s": 5, "reconnect_initial_s": 0.2,
              "reconnect_max_s": 0.5}
    path = gateway_config_path(tmp_path, mosquitto, [SIM1], uplink=uplink)
    topic = "campus/v1/test-site/gw-test/event"
    try:
        async with watching(central, topic) as watcher, running_gateway(path) as gateway:
            gateway.config_path = path
            assert gateway.uplink is not None and gateway.store is not None
            link = gateway.link
            event = SafetyEvent("panic_button", Severity.CRITICAL, time.time(), "device:sim1", "r1", {})
            envelope = await gateway.record_event(event)
            event_id = envelope.event.event_id
            async with asyncio.timeout(5):
                while not await gateway.store.outbox_pending("event", 10):
                    await asyncio.sleep(0.05)
            old_sender = gateway.uplink.sender
            edit(path, uplink={**uplink, "url": central.url})
            assert await gateway.reload() is True
            assert gateway.uplink.sender is not old_sender and gateway.link is link
            got = await watcher.wait_json(topic, lambda b: b["event_id"] == event_id, timeout=15)
            assert got["seq"] == envelope.seq
            names = [s["name"] for s in gateway.supervisor.status()] if gateway.supervisor else []
            assert names.count("uplink-sender") == 1
    finally:
        central.stop()


async def test_local_mqtt_change_brings_up_a_new_link_that_publishes(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    path = gateway_config_path(tmp_path, mosquitto, [SIM1])
    prefix = f"t/{tmp_path.name}"
    async with watching(mosquitto, f"{prefix}/reading/#") as watcher, running_gateway(path) as gateway:
        gateway.config_path = path
        old_link, recorder = gateway.link, gateway.recorder
        local = yaml.safe_load(path.read_text())["mqtt"]["local"]
        edit(path, mqtt={"local": {**local, "keepalive_s": 20}})
        assert await gateway.reload() is True
        assert gateway.link is not old_link and gateway.recorder is recorder
        assert old_link is not None and old_link.state == "stopped"
        async with asyncio.timeout(10):
            while gateway.link is None or gateway.link.state != "connected":
                await asyncio.sleep(0.02)
        watcher.messages.clear()
        await watcher.wait_json(f"{prefix}/reading/sim1/temperature", timeout=10)
        assert gateway.supervisor is not None
        names = [s["name"] for s in gateway.supervisor.status()]
        assert names.count("mqtt-local") == 1 and names.count("local-publisher") == 1


async def test_console_moves_to_a_new_port_with_the_same_app(tmp_path: Path, mosquitto: Mosquitto) -> None:
    import httpx

    first, second = free_port(), free_port()
    path = gateway_config_path(tmp_path, mosquitto, [SIM1], console={"enabled": True, "port": first})
    async with running_gateway(path) as gateway:
        gateway.config_path = path
        assert gateway.console is not None
        app = gateway.console.app
        edit(path, console={"enabled": True, "port": second})
        assert await gateway.reload() is True
        assert gateway.console.app is app and gateway.console.port == second
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{second}/api/rooms")
            assert response.status_code == 401  # the console answers (sign-in needed)
            with pytest.raises(httpx.ConnectError):
                await client.get(f"http://127.0.0.1:{first}/api/rooms")
            assert (await client.get(f"http://127.0.0.1:{second}/metrics")).status_code == 200
            # Metrics and retention settings apply without touching the console's server.
            edit(path, console={"enabled": True, "port": second}, metrics={"enabled": False},
                 retention={"readings_days": 3})
            assert await gateway.reload() is True
            assert gateway.console.port == second
            assert (await client.get(f"http://127.0.0.1:{second}/metrics")).status_code == 404
            assert gateway.retention is not None and gateway.retention.config.readings_days == 3


async def test_sighup_to_edge_run_reloads_and_a_bad_file_leaves_it_running(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    path = gateway_config_path(tmp_path, mosquitto, [SIM1])
    sock = notify_socket(tmp_path)
    log_path = tmp_path / "daemon.log"
    with open(log_path, "w") as out:
        proc = subprocess.Popen([*edge_command(), "run", "--config", str(path)], stdout=out,
                                stderr=subprocess.STDOUT,
                                env=edge_env(NOTIFY_SOCKET=str(tmp_path / "notify.sock")))
    try:
        await asyncio.to_thread(receive_until, sock, "READY=1")
        edit(path, devices=[SIM1, SIM2], log={"level": "warning"})
        os.kill(proc.pid, signal.SIGHUP)
        assert any(m.startswith("RELOADING=1") for m in await asyncio.to_thread(receive_until, sock,
                                                                                 "RELOADING=1"))
        await asyncio.to_thread(receive_until, sock, "READY=1")
        path.write_text("site_id: [broken\n")
        os.kill(proc.pid, signal.SIGHUP)
        await asyncio.to_thread(receive_until, sock, "READY=1")
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
    log = log_path.read_text()
    assert "Traceback" not in log
    assert "config reload:" in log and " ERROR " in log  # the broken file, on stdout
    assert "gateway gw-test ready" in log  # info before the reload raised the level to warning
    assert "service sim:sim1 finished" not in log
    conn = sqlite3.connect(tmp_path / "data" / DB_FILENAME)
    actions = [r[0] for r in conn.execute("SELECT action FROM audit ORDER BY id")]
    assert actions == ["gateway.start", "config.reload", "config.reload_failed", "gateway.stop"]
    conn.close()


async def test_a_removed_device_is_no_offline_alert_but_a_kept_one_still_is(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    path = gateway_config_path(tmp_path, mosquitto, [SIM1, SIM2],
                               alerts={"rules": {"offline": {"for_s": 0}}})
    async with running_gateway(path) as gateway:
        gateway.config_path = path
        assert gateway.alerts is not None and gateway.supervisor is not None
        edit(path, devices=[SIM2])
        assert await gateway.reload() is True
        await asyncio.sleep(1.5)  # the stopped sim1 said "offline"; the alerts ticked past for_s
        assert not [k for k in gateway.alerts.engine.active if k.startswith("device_offline")]
        # A device still configured that stops is an outage as before.
        await gateway.supervisor.swap(["sim:sim2"], [])
        async with asyncio.timeout(5):
            while "device_offline:sim2" not in gateway.alerts.engine.active:
                await asyncio.sleep(0.05)


async def test_a_reload_that_fails_half_way_says_so_and_the_gateway_keeps_running(
        tmp_path: Path, mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    path = gateway_config_path(tmp_path, mosquitto, [SIM1])
    async with running_gateway(path) as gateway:
        gateway.config_path = path

        def broken(key: str) -> list[Any]:
            raise ValueError(f"cannot build {key}")

        monkeypatch.setattr(gateway, "_build_unit", broken)  # a bug while building the new device
        edit(path, devices=[SIM1, SIM2])
        with caplog.at_level(logging.ERROR):
            assert await gateway.reload() is False
        assert "config reload partly applied" in caplog.text and "systemctl restart edge" in caplog.text
        actions = await audit_actions(gateway)
        assert actions[-1][0] == "config.reload_failed"
        assert "partly applied: cannot build sim:sim2" in actions[-1][1]["problems"][0]
        assert gateway.supervisor is not None and not gateway.supervisor.stopping
        assert {s["name"]: s["state"] for s in gateway.supervisor.status()}["sim:sim1"] == "running"
