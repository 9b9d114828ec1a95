"""More of the uplink through the gateway: signed commands over MQTT, MQTT 3.1.1, IPv6, a full outbox,
and clock steps."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.bus import Bus
from edge.clock import ManualClock
from edge.config_uplink import UplinkConfig
from edge.disk_guard import DiskGuard
from edge.events import Envelope, Occupancy, SafetyEvent
from edge.store import Store
from edge.uplink.intake import UplinkIntake
from edge.uplink.metrics import UplinkMetrics
from edge.uplink.signature import sign
from tests.conftest import Mosquitto, free_port, start_mosquitto
from tests.gateway_harness import running_gateway, watching
from tests.uplink.schemas import validate
from tests.uplink.test_uplink_flow import BASE, panic, uplink_config


def signed(key: Ed25519PrivateKey, command_id: str, action: str = "ping", **extra: object) -> bytes:
    now = time.time()
    body = {"command_id": command_id, "device_id": "gateway", "action": action, "args": {},
            "issued_at": now, "expires_at": now + 60, **extra}
    return json.dumps(sign(key, body)).encode()


async def test_signed_commands_from_the_platform_run_once_and_bad_ones_are_refused(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    key = Ed25519PrivateKey.generate()
    key_file = tmp_path / "platform.pub"
    key_file.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo))
    central = start_mosquitto(tmp_path / "central")
    commands = {"enabled": True, "public_key_file": str(key_file),
                "allow": [{"devices": ["gateway"], "actions": ["ping", "config_version"]}]}
    try:
        async with watching(central, f"{BASE}/cmd/result") as watcher, \
                running_gateway(uplink_config(tmp_path, mosquitto, central.url, commands=commands)):
            await asyncio.sleep(0.5)  # the gateway has subscribed to cmd once connected
            send = watcher.client.publish
            await send(f"{BASE}/cmd", signed(key, "c-1"), qos=1)
            ok = await watcher.wait_json(f"{BASE}/cmd/result", lambda b: b["command_id"] == "c-1", timeout=10)
            await send(f"{BASE}/cmd", signed(key, "c-1"), qos=1)  # the platform re-sends it
            again = await watcher.wait_json(f"{BASE}/cmd/result",
                                            lambda b: b["command_id"] == "c-1" and b["duplicate"])
            tampered = json.loads(signed(key, "c-2"))
            tampered["action"] = "config_version"
            await send(f"{BASE}/cmd", json.dumps(tampered).encode(), qos=1)
            forged = await watcher.wait_json(f"{BASE}/cmd/result", lambda b: b["command_id"] == "c-2")
            await send(f"{BASE}/cmd", b"{" + b" " * 1_048_576 + b"}", qos=1)
            huge = await watcher.wait_json(f"{BASE}/cmd/result", lambda b: b["command_id"] == "")
            await send(f"{BASE}/cmd", signed(key, "c-3", action="resend_status"), qos=1)
            not_allowed = await watcher.wait_json(f"{BASE}/cmd/result", lambda b: b["command_id"] == "c-3")
            await send(f"{BASE}/cmd", signed(key, "c-4", action="config_version"), qos=1)
            version = await watcher.wait_json(f"{BASE}/cmd/result", lambda b: b["command_id"] == "c-4")
        assert ok["status"] == "ok" and ok["detail"]["pong"] is True and not ok["duplicate"]
        assert again["finished_at"] == ok["finished_at"]  # the earlier result, not a second run
        assert forged["status"] == "rejected" and "signature" in forged["reason"]
        assert huge["status"] == "rejected" and "exceeds" in huge["reason"]
        assert not_allowed["status"] == "rejected" and "allow" in not_allowed["reason"]
        assert version["status"] == "ok" and len(version["detail"]["config_version"]) == 16
        for body in watcher.json_on(f"{BASE}/cmd/result"):
            validate("cmd_result", body)
    finally:
        central.stop()


async def test_mqtt_311_and_an_ipv6_broker_address(tmp_path: Path, mosquitto: Mosquitto) -> None:
    v6_port = free_port("::1")
    central = start_mosquitto(tmp_path / "central", extra=f"allow_anonymous true\nlistener {v6_port} ::1")
    try:
        config = uplink_config(tmp_path, mosquitto, f"mqtt://[::1]:{v6_port}", protocol="3.1.1")
        async with watching(central, f"{BASE}/event") as watcher, running_gateway(config) as gateway:
            envelope = await gateway.record_event(panic(1))
            event_id = envelope.event.event_id
            body = await watcher.wait_json(f"{BASE}/event", lambda b: b["event_id"] == event_id, timeout=10)
        validate("event", body)
    finally:
        central.stop()


async def test_safety_events_past_their_cap_are_kept_and_raise_a_critical_alert(
        tmp_path: Path, mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("edge.uplink.intake.STATS_S", 0.2)
    nowhere = f"mqtt://127.0.0.1:{free_port()}"
    config = uplink_config(tmp_path, mosquitto, nowhere, outbox={"event": {"max_rows": 100, "max_mb": 1}})
    async with running_gateway(config) as gateway:
        accepted = [await gateway.record_event(panic(n)) for n in range(120)]
        assert gateway.alerts is not None
        async with asyncio.timeout(10):
            while not any(a.kind == "uplink_backlog_full" for a in gateway.alerts.book.open_alerts()):
                await asyncio.sleep(0.05)
        assert gateway.store is not None
        stats = await gateway.store.outbox_stats()
    assert stats["classes"]["event"]["count"] >= len(accepted)  # nothing evicted
    assert stats["classes"]["event"]["over_cap"]
    (alert,) = [a for a in gateway.alerts.book.open_alerts() if a.kind == "uplink_backlog_full"]
    assert alert.severity == "critical"


async def test_a_wall_clock_step_does_not_expire_queued_telemetry(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("edge.uplink.intake.EXPIRE_S", 0.05)
    clock = ManualClock(time.time())
    store = await Store.open(tmp_path, clock)
    bus = Bus()
    limits = {"occupancy": {"max_rows": 1000, "max_mb": 1, "ttl_s": 600}}
    config = UplinkConfig.model_validate({"url": "mqtt://127.0.0.1:1", "outbox": limits})

    async def record(event: SafetyEvent) -> Envelope:
        return await store.add_event(event)

    intake = UplinkIntake(config, store, bus, clock, UplinkMetrics(), record)
    task = asyncio.create_task(intake.run(lambda: None))
    try:
        await asyncio.sleep(0.1)
        await store.outbox_add("occupancy", ['{"count": 1}'], clock.now())
        clock.jump(86_400)  # an NTP step of a day: monotonic time did not move
        await asyncio.sleep(0.3)
        assert (await store.outbox_stats(clock.now()))["classes"]["occupancy"]["count"] == 1
        clock.advance(601)  # real time passing does expire it
        async with asyncio.timeout(5):
            while (await store.outbox_stats(clock.now()))["classes"]["occupancy"]["count"]:
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.close()


def test_the_uplink_config_checks_its_url_and_tls_files() -> None:
    with pytest.raises(ValueError, match="mqtt://"):
        UplinkConfig.model_validate({"url": "http://central"})
    with pytest.raises(ValueError, match="together"):
        UplinkConfig.model_validate({"url": "mqtts://central", "tls_cert_file": "/x.pem"})
    v6 = UplinkConfig.model_validate({"url": "mqtts://[2001:db8::1]:8884"})
    assert v6.broker_address() == ("2001:db8::1", 8884, True)


async def test_on_a_nearly_full_disk_only_safety_events_are_queued(tmp_path: Path) -> None:
    clock = ManualClock(time.time())
    store = await Store.open(tmp_path, clock)
    bus = Bus()
    free = {"bytes": 10 * 1024 * 1024}  # 10 MB free: under the 200 MB guard

    async def record(event: SafetyEvent) -> Envelope:
        return await store.add_event(event)

    metrics = UplinkMetrics()
    intake = UplinkIntake(UplinkConfig.model_validate({"url": "mqtt://127.0.0.1:1"}), store, bus, clock,
                          metrics, record,
                          guard=DiskGuard(tmp_path, 200, free_bytes=lambda _: free["bytes"], cache_s=0))
    task = asyncio.create_task(intake.run(lambda: None))
    try:
        async with asyncio.timeout(5):
            while not metrics.disk_low:
                await asyncio.sleep(0.02)
        bus.publish(Occupancy("r1", 2, clock.now(), camera_id="cam1"))
        await record(panic(1))
        async with asyncio.timeout(5):
            while not metrics.dropped_disk:
                await asyncio.sleep(0.02)
        stats = await store.outbox_stats(clock.now())
        assert stats["classes"]["event"]["count"] == 1  # kept
        assert stats["classes"]["occupancy"]["count"] == 0 and metrics.dropped_disk == {"occupancy": 1}
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.close()


async def test_under_mqtt_5_telemetry_carries_its_remaining_ttl_as_message_expiry(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    import aiomqtt

    central = start_mosquitto(tmp_path / "central")
    seen: dict[str, object] = {}
    try:
        async with aiomqtt.Client(central.host, central.port, protocol=aiomqtt.ProtocolVersion.V5) as client:
            await client.subscribe(f"{BASE}/#", qos=1)
            async with running_gateway(uplink_config(tmp_path, mosquitto, central.url)) as gateway:
                await gateway.record_event(panic(1))
                async with asyncio.timeout(15):
                    async for message in client.messages:
                        kind = message.topic.value.removeprefix(BASE + "/")
                        props = message.properties
                        seen.setdefault(kind, getattr(props, "MessageExpiryInterval", None))
                        if "telemetry" in seen and "event" in seen:
                            break
    finally:
        central.stop()
    assert isinstance(seen["telemetry"], int) and 0 < seen["telemetry"] <= 3 * 86400
    assert seen["event"] is None  # safety events never expire


async def test_mutual_tls_with_a_password_and_the_host_name_checked(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    from edge.mqtt import BrokerEndpoint, tls_context
    from tests.test_mqtt_auth_tls import password_file
    from tests.tls_certs import make_certs

    certs = make_certs(tmp_path / "pki")
    passwd = password_file(tmp_path, "gw-test", "uplink-secret")
    central = start_mosquitto(tmp_path / "central", extra=(
        f"allow_anonymous false\npassword_file {passwd}\ncafile {certs.ca}\ncertfile {certs.server_cert}\n"
        f"keyfile {certs.server_key}\nrequire_certificate true"))
    secret = tmp_path / "uplink.pw"
    secret.write_text("uplink-secret\n")
    try:
        config = uplink_config(tmp_path, mosquitto, f"mqtts://localhost:{central.port}", username="gw-test",
                               password_file=str(secret), tls_ca_file=str(certs.ca),
                               tls_cert_file=str(certs.client_cert), tls_key_file=str(certs.client_key))
        async with running_gateway(config) as gateway:
            assert gateway.uplink is not None
            await gateway.record_event(panic(1))
            async with asyncio.timeout(10):  # acknowledged by the broker over mutual TLS
                while not gateway.uplink.metrics.delivered.get("event"):
                    await asyncio.sleep(0.05)
    finally:
        central.stop()
    context = tls_context(BrokerEndpoint("localhost", 8883, True, ca_file=str(certs.ca)))
    assert context.check_hostname and context.minimum_version.name == "TLSv1_2"
