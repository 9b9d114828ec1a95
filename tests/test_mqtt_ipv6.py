"""Local MQTT over IPv6: a whole gateway publishes to a Mosquitto that listens on ::1 only."""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
from pathlib import Path

import aiomqtt
import pytest

from tests.conftest import Mosquitto
from tests.gateway_harness import gateway_config_path, running_gateway
from tests.test_mosquitto_conf import SHIPPED_ACL, SHIPPED_CONF, set_password, start_edge_broker


async def test_the_gateway_publishes_status_and_readings_to_a_broker_on_ipv6_loopback(tmp_path: Path) -> None:
    password = secrets.token_urlsafe(18)
    passwd, acl = tmp_path / "edge.passwd", tmp_path / "edge.acl"
    set_password(passwd, "edge", password)
    acl.write_text(SHIPPED_ACL.read_text())
    # The production broker config with its IPv4 listener taken out: only ::1 is left.
    conf = SHIPPED_CONF.read_text().replace("listener 1883 127.0.0.1\n", "")
    broker = start_edge_broker(tmp_path, conf, passwd, acl, hosts=("::1",))
    try:
        port = broker.ports["::1"]
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
            pass  # nothing on IPv4 at that port: the gateway below can only be using ::1
        (tmp_path / "mqtt-local.password").write_text(password + "\n")
        local = {"url": f"mqtt://[::1]:{port}", "username": "edge",
                 "password_file": str(tmp_path / "mqtt-local.password"), "topic_prefix": "edge/gw-v6"}
        placeholder = Mosquitto("::1", port, broker.proc)  # the harness wants one; url is overridden
        config = gateway_config_path(tmp_path, placeholder, [
            {"id": "sim1", "type": "simulated", "room_id": "r1", "interval_s": 0.2, "metrics": ["co2"]}],
            local=local)
        async with aiomqtt.Client("::1", port, username="edge", password=password) as watcher:
            await watcher.subscribe("edge/gw-v6/#", qos=1)
            async with running_gateway(config) as gateway:
                assert gateway.link is not None and gateway.link.state == "connected"
                seen: dict[str, dict[str, object]] = {}
                async with asyncio.timeout(10):
                    async for message in watcher.messages:
                        seen[message.topic.value] = json.loads(bytes(message.payload))  # type: ignore[arg-type]
                        if {"edge/gw-v6/status", "edge/gw-v6/reading/sim1/co2"} <= set(seen):
                            break
            assert seen["edge/gw-v6/status"]["state"] == "online"
            assert seen["edge/gw-v6/reading/sim1/co2"]["unit"] == "ppm"
            # A clean stop leaves the retained status offline on the IPv6 broker.
            async with asyncio.timeout(10):
                async for message in watcher.messages:
                    if message.topic.value == "edge/gw-v6/status":
                        body = json.loads(bytes(message.payload))  # type: ignore[arg-type]
                        if body["state"] == "offline":
                            break
    finally:
        broker.stop()
