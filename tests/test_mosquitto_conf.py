"""The shipped Mosquitto config: no anonymous access, user edge accepted on 127.0.0.1 and ::1, the ACL."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import pytest

from tests.conftest import REPO, free_port, mosquitto_binary, terminate, wait_for_port

SHIPPED_CONF = REPO / "systemd" / "mosquitto" / "edge.conf"
SHIPPED_ACL = REPO / "systemd" / "mosquitto" / "edge.acl"
LOOPBACKS = ("127.0.0.1", "::1")


@dataclass
class EdgeBroker:
    """Mosquitto running the shipped config on two free loopback ports."""

    ports: dict[str, int]
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        terminate(self.proc)


def start_edge_broker(directory: Path, conf: str, passwd: Path, acl: Path,
                      hosts: tuple[str, ...] = LOOPBACKS) -> EdgeBroker:
    """Start mosquitto with conf, only its ports and file paths moved into the test's reach."""
    ports = {host: free_port(host) for host in hosts}
    for host, port in ports.items():
        listener = f"listener 1883 {host}\n"
        assert conf.count(listener) == 1, f"the config has no {listener!r}"
        conf = conf.replace(listener, f"listener {port} {host}\n")
    for shipped, local in (("/etc/mosquitto/edge.passwd", passwd), ("/etc/mosquitto/edge.acl", acl)):
        assert conf.count(shipped) == 1
        conf = conf.replace(shipped, str(local))
    # As root mosquitto drops to its own user, which cannot read pytest's 0700 temp dirs.
    if os.geteuid() == 0:
        conf = "user root\n" + conf
    path = directory / "edge-mosquitto.conf"
    path.write_text(conf)
    with open(directory / "edge-mosquitto.log", "wb") as log:
        proc = subprocess.Popen([mosquitto_binary(), "-c", str(path)], stdout=log, stderr=log)
    try:
        for host, port in ports.items():
            wait_for_port(host, port)
    except TimeoutError:
        proc.kill()
        proc.wait()
        raise AssertionError((directory / "edge-mosquitto.log").read_text()) from None
    return EdgeBroker(ports, proc)


def set_password(passwd: Path, user: str, password: str) -> None:
    """Add or change a user in a Mosquitto password file, as scripts/install does."""
    if not passwd.exists():
        passwd.touch()
    subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password], check=True, timeout=30)


async def refused(host: str, port: int, **credentials: str) -> str:
    """Try to connect; return the broker's refusal (fails the test if it is accepted)."""
    with pytest.raises(aiomqtt.MqttError) as err:
        async with aiomqtt.Client(host, port, timeout=5, **credentials):  # type: ignore[arg-type]
            pass
    return str(err.value)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[tuple[EdgeBroker, str]]:
    password = secrets.token_urlsafe(18)
    passwd, acl = tmp_path / "edge.passwd", tmp_path / "edge.acl"
    set_password(passwd, "edge", password)
    acl.write_text(SHIPPED_ACL.read_text())
    running = start_edge_broker(tmp_path, SHIPPED_CONF.read_text(), passwd, acl)
    yield running, password
    running.stop()


def test_the_shipped_config_listens_on_loopback_only_and_keeps_the_lan_listener_commented() -> None:
    active = [line for line in SHIPPED_CONF.read_text().splitlines() if line and not line.startswith("#")]
    assert [line for line in active if line.startswith("listener")] == [
        "listener 1883 127.0.0.1", "listener 1883 ::1"]
    assert "allow_anonymous false" in active
    commented = SHIPPED_CONF.read_text()
    assert "#listener 8883" in commented and "#certfile /etc/mosquitto/certs/" in commented


@pytest.mark.parametrize("host", LOOPBACKS)
async def test_anonymous_and_wrong_passwords_are_refused_and_edge_is_accepted(
        broker: tuple[EdgeBroker, str], host: str) -> None:
    running, password = broker
    port = running.ports[host]
    assert "authori" in (await refused(host, port)).lower()
    assert "authori" in (await refused(host, port, username="edge", password=password + "x")).lower()
    assert "authori" in (await refused(host, port, username="nobody", password=password)).lower()
    async with aiomqtt.Client(host, port, username="edge", password=password, timeout=5) as client:
        await client.subscribe("edge/#", qos=1)
        await client.publish("edge/gw/ping", b"1", qos=1)
        async with asyncio.timeout(5):
            message = await anext(aiter(client.messages))
        assert (message.topic.value, message.payload) == ("edge/gw/ping", b"1")


async def test_the_acl_lets_edge_write_only_its_topics_and_a_device_user_only_its_own(
        broker: tuple[EdgeBroker, str], tmp_path: Path) -> None:
    running, password = broker
    port = running.ports["::1"]
    # A classroom device gets its own user and ACL lines, as docs/operations.md describes.
    set_password(tmp_path / "edge.passwd", "zigbee2mqtt", "z-secret")
    (tmp_path / "edge.acl").write_text(SHIPPED_ACL.read_text()
                                       + "user zigbee2mqtt\ntopic readwrite zigbee2mqtt/#\n")
    running.proc.send_signal(1)  # SIGHUP: mosquitto re-reads the password file and the ACL
    async with asyncio.timeout(10):
        while True:
            try:
                async with aiomqtt.Client("::1", port, username="zigbee2mqtt", password="z-secret"):
                    break
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)
    async with aiomqtt.Client("::1", port, username="edge", password=password) as edge:
        await edge.subscribe("#", qos=1)
        await edge.publish("other/x", b"denied", qos=1)
        async with aiomqtt.Client("::1", port, username="zigbee2mqtt", password="z-secret") as z:
            await z.publish("edge/gw/cmd", b"denied", qos=1)
            await z.publish("zigbee2mqtt/r101-climate", b'{"temperature": 21}', qos=1)
        await edge.publish("homeassistant/sensor/x/config", b"{}", qos=1)
        await edge.publish("edge/gw/status", b"online", qos=1)
        got = []
        async with asyncio.timeout(5):
            async for message in edge.messages:
                got.append(message.topic.value)
                if message.topic.value == "edge/gw/status":
                    break
    # Delivery is in order per publisher, so a denied message would have come before the last one.
    assert got == ["zigbee2mqtt/r101-climate", "homeassistant/sensor/x/config", "edge/gw/status"]
