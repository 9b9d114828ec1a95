"""Sensor nodes through the whole gateway: readings, availability, events, commands, discovery."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from pathlib import Path

from edge.sources.nodes import NodeSource
from firmware_bridge.node_protocol import ReadingKind
from firmware_bridge.streams import open_pty
from tests.conftest import Mosquitto
from tests.gateway_harness import gateway_config_path, running_gateway, watching
from tests.node_plug import Plug


def node_device(port: Path, **extra: object) -> dict[str, object]:
    return {"id": "node1", "type": "node", "room_id": "r1", "port": str(port), "heartbeat_s": 0.5,
            "missed_heartbeats": 2, "reopen_max_s": 0.5, **extra}


async def test_node_readings_events_availability_and_replug(tmp_path: Path, mosquitto: Mosquitto) -> None:
    plug = Plug(tmp_path / "usb-node1-if00", node_id="node1", interval_s=0.2)
    plug.plug()
    prefix = f"t/{tmp_path.name}"
    path = gateway_config_path(tmp_path, mosquitto, [node_device(plug.link_path)])
    async with watching(mosquitto, f"{prefix}/#", "homeassistant/#") as mqtt, \
            running_gateway(path) as gateway:
        status = f"{prefix}/device/node1/status"
        online = await mqtt.wait_json(status, lambda b: b["online"])
        assert "node1 firmware sim-1.0.0" in online["detail"]
        co2 = await mqtt.wait_json(f"{prefix}/reading/node1/co2")
        assert co2["unit"] == "ppm" and 300 <= co2["value"] <= 5000 and co2["room_id"] == "r1"
        # Home Assistant sees the node's metrics, retained.
        discovery = await mqtt.wait_json("homeassistant/sensor/gw-test_node1/co2/config")
        assert discovery["state_topic"] == f"{prefix}/reading/node1/co2"
        assert discovery["device_class"] == "carbon_dioxide"
        smoke = await mqtt.wait_json("homeassistant/binary_sensor/gw-test_node1/smoke_alarm/config")
        assert smoke["device_class"] == "smoke"

        # A panic-button press is stored with a seq and then published: even when its first
        # frame is lost on the line (the node resends it until the gateway ACKs it).
        plug.node.lose_next_frames = 1
        plug.node.press(ReadingKind.PANIC_BUTTON)
        event = await mqtt.wait_json(f"{prefix}/event", lambda b: b["type"] == "panic_button")
        assert event["severity"] == "critical" and event["room_id"] == "r1" and event["seq"] >= 1
        assert event["source"] == "device:node1" and plug.node.frames_lost == 1
        await asyncio.sleep(1.2)  # ACKed once stored: no more resends, so no second event
        assert plug.node.unacked_events == []
        events = mqtt.json_on(f"{prefix}/event")
        assert [e["type"] for e in events if e["type"] != "alert"] == ["panic_button"]
        # ... and the press is one alert, raised from that stored event.
        assert [(e["data"]["kind"], e["data"]["action"]) for e in events if e["type"] == "alert"] \
            in ([], [("panic", "raised")])

        # Unplug: offline. Plug back in: online, and readings resume within 5 s.
        await plug.unplug()
        await mqtt.wait_json(status, lambda b: not b["online"], timeout=5)
        before = len(mqtt.json_on(f"{prefix}/reading/node1/co2"))
        plug.plug()
        loop = asyncio.get_running_loop()
        returned = loop.time()
        await mqtt.wait_json(status, lambda b: b["online"] and b["ts"] > online["ts"], timeout=5)
        async with asyncio.timeout(5):
            while len(mqtt.json_on(f"{prefix}/reading/node1/co2")) <= before:
                await asyncio.sleep(0.05)
        assert loop.time() - returned < 5
        await plug.unplug()
        store = gateway.store
        assert store is not None
    conn = sqlite3.connect(tmp_path / "data" / "edge.db")
    (stored,) = conn.execute("SELECT type FROM events WHERE seq = ?", [event["seq"]]).fetchone()
    assert stored == "panic_button"
    assert conn.execute("SELECT count(*) FROM readings WHERE device_id='node1'").fetchone()[0] > 0


async def test_node_dropout_goes_offline_and_comes_back(tmp_path: Path, mosquitto: Mosquitto) -> None:
    # The port stays open but the node stops talking (a hung or browned-out node, as
    # `edge simulate node --dropout-every` does): offline after the missed heartbeats,
    # online again with its next frame.
    plug = Plug(tmp_path / "usb-node1-if00", node_id="node1", interval_s=0.2)
    plug.plug(dropout_every_s=1.0, dropout_for_s=2.0)
    prefix = f"t/{tmp_path.name}"
    path = gateway_config_path(tmp_path, mosquitto, [node_device(plug.link_path)])
    async with watching(mosquitto, f"{prefix}/device/#") as mqtt, running_gateway(path):
        status = f"{prefix}/device/node1/status"
        await mqtt.wait_json(status, lambda b: b["online"])
        offline = await mqtt.wait_json(status, lambda b: not b["online"], timeout=5)
        assert "no frame for 1s" in offline["detail"]
        await mqtt.wait_json(status, lambda b: b["online"] and b["ts"] > offline["ts"], timeout=5)
        await plug.unplug()


def command(command_id: str, action: str, **args: object) -> bytes:
    return json.dumps({"command_id": command_id, "action": action, "args": args}).encode()


async def test_commands_run_once_and_bad_ones_are_rejected(tmp_path: Path, mosquitto: Mosquitto) -> None:
    plug = Plug(tmp_path / "usb-node1-if00", node_id="node1", interval_s=0.5)
    plug.plug()
    # A second node whose firmware never answers: commands time out after the retries.
    master, silent_path = open_pty()
    os.symlink(silent_path, tmp_path / "usb-silent-if00")
    prefix = f"t/{tmp_path.name}"
    devices = [node_device(plug.link_path, command_timeout_s=0.3, command_retries=1),
               node_device(tmp_path / "usb-silent-if00", id="silent", command_timeout_s=0.2,
                           command_retries=1),
               {"id": "sim1", "type": "simulated", "room_id": "r1", "interval_s": 5}]
    path = gateway_config_path(tmp_path, mosquitto, devices)
    async with watching(mosquitto, f"{prefix}/device/+/cmd/result", f"{prefix}/device/+/status") as mqtt, \
            running_gateway(path) as gateway:
        await mqtt.wait_json(f"{prefix}/device/node1/status", lambda b: b["online"])
        cmd_topic, result_topic = f"{prefix}/device/node1/cmd", f"{prefix}/device/node1/cmd/result"

        async def send(payload: bytes, command_id: str | None, topic: str = cmd_topic,
                       results: str = result_topic) -> dict[str, object]:
            seen = len(mqtt.json_on(results))
            await mqtt.client.publish(topic, payload, qos=1)
            async with asyncio.timeout(5):
                while True:
                    fresh = mqtt.json_on(results)[seen:]
                    matching = [r for r in fresh if r["command_id"] == (command_id or "")]
                    if matching:
                        return matching[0]
                    await asyncio.sleep(0.02)

        ok = await send(command("c1", "relay", channel=1, state="on"), "c1")
        assert ok["status"] == "ok" and not ok["duplicate"]
        assert plug.node.relays == {1: True}
        # Redelivered: not run again (the relay we switched back by hand stays off).
        plug.node.relays[1] = False
        again = await send(command("c1", "relay", channel=1, state="on"), "c1")
        assert again["status"] == "ok" and again["duplicate"] is True
        assert plug.node.relays == {1: False}

        light = await send(command("c2", "light", level=40), "c2")
        assert light["status"] == "ok" and plug.node.lights == {0: 40}
        nack = await send(command("c3", "relay", channel=9, state="on"), "c3")
        assert nack["status"] == "failed" and "bad_argument" in str(nack["reason"])

        bad = {
            b"\xff\xfe not utf-8": (None, "not UTF-8"),
            b"{not json": (None, "not JSON"),
            b"[1, 2]": (None, "JSON object"),
            command("c4", "light", level="high"): ("c4", "args.level"),
            command("c5", "toggle"): ("c5", "unknown action 'toggle'"),
            command("c6", "relay", channel=0, state="on", extra=1): ("c6", "args.extra"),
            json.dumps({"command_id": "c7", "action": "relay", "args": {"state": "on"},
                        "blob": "x" * 1_000_000}).encode(): (None, "exceeds"),
            b"[" * 3000 + b"]" * 3000: (None, "nested too deeply"),
            command("c1", "relay", state="off"): ("c1", "already used"),  # c1 belongs to node1
        }
        for payload, (command_id, reason) in bad.items():
            if reason == "already used":
                result = await send(payload, command_id, f"{prefix}/device/silent/cmd",
                                    f"{prefix}/device/silent/cmd/result")
            else:
                result = await send(payload, command_id)
            assert result["status"] == "rejected", result
            assert reason in str(result["reason"]), (reason, result)
        unknown = await send(command("c8", "relay", state="on"), "c8",
                             f"{prefix}/device/ghost/cmd", f"{prefix}/device/ghost/cmd/result")
        assert unknown["status"] == "rejected" and "unknown device" in str(unknown["reason"])
        sensor = await send(command("c11", "relay", state="on"), "c11", f"{prefix}/device/sim1/cmd",
                            f"{prefix}/device/sim1/cmd/result")
        assert sensor["status"] == "rejected" and "for a simulated device (known: none)" in str(
            sensor["reason"])

        silent = await send(command("c9", "relay", state="on"), "c9", f"{prefix}/device/silent/cmd",
                            f"{prefix}/device/silent/cmd/result")
        assert silent["status"] == "timeout" and "2 attempts" in str(silent["reason"])

        # Still alive and obeying after all that.
        final = await send(command("c10", "relay", channel=2, state="on"), "c10")
        assert final["status"] == "ok" and plug.node.relays[2] is True
        assert gateway.store is not None and await gateway.store.verify_audit() is None
        await plug.unplug()
    master.close()
    conn = sqlite3.connect(tmp_path / "data" / "edge.db")
    actions = [r[0] for r in conn.execute("SELECT action FROM audit")]
    assert actions.count("command.rejected") == len(bad) + 2
    assert actions.count("command.finished") == 5  # c1, c2, c3, c9, c10: each once
    rows = dict(conn.execute("SELECT command_id, status FROM commands").fetchall())
    assert rows == {"c1": "ok", "c2": "ok", "c3": "failed", "c9": "timeout", "c10": "ok"}


async def test_a_silent_node_delays_only_its_own_commands(tmp_path: Path, mosquitto: Mosquitto) -> None:
    plug = Plug(tmp_path / "usb-node1-if00", node_id="node1", interval_s=0.5)
    plug.plug()
    master, silent_path = open_pty()
    os.symlink(silent_path, tmp_path / "usb-silent-if00")
    prefix = f"t/{tmp_path.name}"
    devices = [node_device(plug.link_path),
               node_device(tmp_path / "usb-silent-if00", id="silent", command_timeout_s=1.0,
                           command_retries=0)]
    path = gateway_config_path(tmp_path, mosquitto, devices)
    async with watching(mosquitto, f"{prefix}/device/+/cmd/result", f"{prefix}/device/+/status") as mqtt, \
            running_gateway(path):
        await mqtt.wait_json(f"{prefix}/device/node1/status", lambda b: b["online"])
        for i in range(25):  # one runs, 20 wait, the rest are refused at once
            await mqtt.client.publish(f"{prefix}/device/silent/cmd", command(f"s{i}", "relay", state="on"),
                                      qos=1)
        busy = await mqtt.wait_json(f"{prefix}/device/silent/cmd/result",
                                    lambda b: "gateway busy" in b["reason"])
        assert busy["status"] == "rejected"
        # Meanwhile the healthy node's command is not stuck behind the silent one's queue.
        await mqtt.client.publish(f"{prefix}/device/node1/cmd", command("n1", "light", level=10), qos=1)
        result = await mqtt.wait_json(f"{prefix}/device/node1/cmd/result", timeout=3)
        assert result["status"] == "ok" and plug.node.lights == {0: 10}
        refused = [r for r in mqtt.json_on(f"{prefix}/device/silent/cmd/result")
                   if "gateway busy" in r["reason"]]
        assert len(refused) >= 3
        # A node whose port opened but which never said a word is reported offline too.
        never = await mqtt.wait_json(f"{prefix}/device/silent/status", lambda b: not b["online"])
        assert "no frame for 1s" in never["detail"]
        await plug.unplug()
    master.close()


async def test_status_reaches_a_broker_that_comes_up_late(tmp_path: Path) -> None:
    # The node comes online while the broker is still down; its retained status must
    # still be there once the broker is (the gateway publishes it again on connect).
    from tests.conftest import free_port, start_mosquitto

    plug = Plug(tmp_path / "usb-node1-if00", node_id="node1", interval_s=0.2)
    plug.plug()
    port = free_port()
    late = Mosquitto("127.0.0.1", port, None)  # type: ignore[arg-type]  # not started yet
    path = gateway_config_path(tmp_path, late, [node_device(plug.link_path)])
    try:
        async with running_gateway(path, connected=False) as gateway:
            async with asyncio.timeout(5):
                while not any(isinstance(s, NodeSource) and s.availability.online
                              for s in gateway.services):
                    await asyncio.sleep(0.05)
            broker = start_mosquitto(tmp_path / "late-broker", port)
            try:
                async with watching(broker, f"t/{tmp_path.name}/device/#") as mqtt:
                    status = await mqtt.wait_json(f"t/{tmp_path.name}/device/node1/status", timeout=10)
                    assert status["online"] is True
                async with watching(broker, f"t/{tmp_path.name}/device/#") as later:
                    await later.wait_json(f"t/{tmp_path.name}/device/node1/status")
                    assert all(retained for _, _, retained in later.messages)
            finally:
                broker.stop()
    finally:
        await plug.unplug()
