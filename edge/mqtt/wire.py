"""paho-level helpers: TLS, message expiry, and handing batches to paho without aiomqtt's overhead."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Sequence

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.mqtt.values import BrokerEndpoint, Outgoing


def tls_context(endpoint: BrokerEndpoint) -> ssl.SSLContext:
    """TLS 1.2 or newer, the broker's certificate and host name checked, optional client cert."""
    context = ssl.create_default_context(cafile=endpoint.ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if endpoint.cert_file and endpoint.key_file:
        context.load_cert_chain(endpoint.cert_file, endpoint.key_file)
    return context


def _expiry(seconds: float | None) -> Properties | None:
    if seconds is None:
        return None
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.MessageExpiryInterval = max(1, int(seconds))
    return props


class AckCounter:
    """Stands in for aiomqtt's per-publish event: aiomqtt's on_publish calls set() per PUBACK."""

    __slots__ = ("done", "left")

    def __init__(self, count: int) -> None:
        self.left = count
        self.done = asyncio.Event()

    def set(self) -> None:
        """One more message acknowledged."""
        self.left -= 1
        if self.left <= 0:
            self.done.set()


def queue_confirmed(client: aiomqtt.Client, messages: Sequence[Outgoing], acks: AckCounter,
                     v5: bool) -> None:
    """Hand QoS 1 messages to paho in order, each PUBACK counted by acks.

    aiomqtt's own publish() costs a task, a timer and an event per message, most of the
    uplink's CPU in a backlog drain; paho underneath does the protocol work anyway, and
    aiomqtt's on_publish callback sets whatever waits under the message id.
    """
    paho_client = client._client
    pending = client._pending_publishes
    for topic, payload, expiry in messages:
        info = paho_client.publish(topic, payload, 1, False, _expiry(expiry) if v5 else None)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise aiomqtt.MqttCodeError(info.rc, "could not publish message")
        if info.is_published():
            acks.set()
        else:
            pending[info.mid] = acks  # type: ignore[assignment]  # duck-typed: only set() is called


def queue_messages(paho_client: paho.Client, messages: Sequence[tuple[str, bytes]], qos: int) -> None:
    for topic, payload in messages:
        info = paho_client.publish(topic, payload, qos)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise aiomqtt.MqttCodeError(info.rc, "could not publish message")


def write_unobserved(paho_client: paho.Client, messages: Sequence[tuple[str, bytes]]) -> None:
    """Queue QoS 0 messages and write what the socket takes now, with on_publish unset.

    With a callback set, paho builds a reason code and properties for every QoS 0 message
    it writes, which more than doubles its CPU per message; aiomqtt only needs the callback
    for publishes it awaits, and the caller checked that none is queued (want_write() was
    False). PUBACKs (QoS 1 confirmations) arrive on reads, which cannot happen in here.
    """
    on_publish = paho_client.on_publish
    paho_client.on_publish = None
    try:
        queue_messages(paho_client, messages, 0)
        paho_client.loop_write()
    finally:
        paho_client.on_publish = on_publish


def send_without_delay(client: aiomqtt.Client) -> None:
    """Turn Nagle's algorithm off, as brokers do for their side.

    With it on, a small packet (a safety event) waits for the ACK of the previous one
    (say a reading), and delayed ACKs make that up to 40 ms.
    """
    sock = client._client.socket()
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
