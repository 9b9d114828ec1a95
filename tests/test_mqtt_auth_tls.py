"""The local link against a Mosquitto that requires a password, TLS and client certs."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from edge.app import Gateway
from edge.backoff import Backoff
from edge.config_loader import load_config
from edge.mqtt import BrokerEndpoint, MqttLink, StatusTopic
from tests.conftest import cancel_and_wait, start_mosquitto, write_config
from tests.tls_certs import CertSet, make_certs


def link_to(endpoint: BrokerEndpoint) -> MqttLink:
    return MqttLink("mqtt-auth", lambda: endpoint, "edge-auth",
                    StatusTopic("t/auth/status", lambda: b"online", b"offline"),
                    keepalive_s=5, backoff=Backoff(0.1, 0.3))


async def outcome(link: MqttLink, seconds: float = 2.0) -> str:
    """Run the link for up to `seconds` and return whether it got connected."""
    task = asyncio.create_task(link.run(lambda: None))
    try:
        async with asyncio.timeout(seconds):
            while link.state != "connected":
                await asyncio.sleep(0.02)
    except TimeoutError:
        pass
    finally:
        await cancel_and_wait(task)
    return "connected" if link.stats.connects else link.state


def password_file(directory: Path, user: str, password: str) -> Path:
    path = directory / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(path), user, password], check=True)
    return path


async def test_username_and_password(tmp_path: Path) -> None:
    passwd = password_file(tmp_path, "edge", "right-pw")
    broker = start_mosquitto(tmp_path, extra=f"allow_anonymous false\npassword_file {passwd}")
    try:
        ok = BrokerEndpoint("127.0.0.1", broker.port, username="edge", password="right-pw")
        assert await outcome(link_to(ok)) == "connected"
        wrong = BrokerEndpoint("127.0.0.1", broker.port, username="edge", password="wrong")
        assert await outcome(link_to(wrong)) == "disconnected"
        anonymous = BrokerEndpoint("127.0.0.1", broker.port)
        assert await outcome(link_to(anonymous)) == "disconnected"
    finally:
        broker.stop()


@pytest.fixture
def certs(tmp_path: Path) -> CertSet:
    return make_certs(tmp_path / "pki")


async def test_tls_verifies_the_broker_and_presents_a_client_cert(
    tmp_path: Path, certs: CertSet
) -> None:
    broker = start_mosquitto(tmp_path, extra=(
        f"allow_anonymous true\ncafile {certs.ca}\ncertfile {certs.server_cert}\n"
        f"keyfile {certs.server_key}\nrequire_certificate true"))
    try:
        mutual = BrokerEndpoint("localhost", broker.port, use_tls=True, ca_file=str(certs.ca),
                                cert_file=str(certs.client_cert), key_file=str(certs.client_key))
        assert await outcome(link_to(mutual)) == "connected"
        no_client_cert = BrokerEndpoint("localhost", broker.port, use_tls=True,
                                        ca_file=str(certs.ca))
        # TLS 1.3 refuses the missing client cert after the handshake, so the attempt may
        # still be waiting for CONNACK here: what matters is that it never connects.
        assert await outcome(link_to(no_client_cert)) != "connected"
        other = make_certs(tmp_path / "other-pki", ca_name="Someone Else's CA")
        untrusted = BrokerEndpoint("localhost", broker.port, use_tls=True, ca_file=str(other.ca),
                                   cert_file=str(certs.client_cert),
                                   key_file=str(certs.client_key))
        assert await outcome(link_to(untrusted)) == "disconnected"  # broker cert not trusted
    finally:
        broker.stop()


async def test_config_wires_mqtts_credentials_and_client_cert(
    tmp_path: Path, certs: CertSet
) -> None:
    passwd = password_file(tmp_path, "edge", "from-a-file")
    broker = start_mosquitto(tmp_path, extra=(
        f"allow_anonymous false\npassword_file {passwd}\ncafile {certs.ca}\n"
        f"certfile {certs.server_cert}\nkeyfile {certs.server_key}\nrequire_certificate true"))
    secret = tmp_path / "mqtt.pw"
    secret.write_text("from-a-file\n")
    config = load_config(write_config(tmp_path, mqtt={"local": {
        "url": f"mqtts://localhost:{broker.port}", "username": "edge", "password_file": str(secret),
        "tls": {"ca_file": str(certs.ca), "cert_file": str(certs.client_cert),
                "key_file": str(certs.client_key)},
        "reconnect": {"initial_s": 0.1, "max_s": 0.3}}}))
    try:
        gateway = Gateway(config)
        assert await asyncio.wait_for(gateway.run(stop_after=1.5), 10) == 0
        assert gateway.link is not None and gateway.link.stats.connects == 1
        assert gateway.link.stats.published > 0
    finally:
        broker.stop()
