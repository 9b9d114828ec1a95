"""The MQTT link: the only module that uses the MQTT client library."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiomqtt
import paho.mqtt.client as paho

from edge.backoff import Backoff
from edge.errors import EdgeError, MqttUnavailable

log = logging.getLogger(__name__)

Handler = Callable[[str, bytes], Awaitable[None]]


@dataclass(frozen=True)
class BrokerEndpoint:
    """Where and how to connect."""

    host: str
    port: int
    use_tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    username: str | None = None
    password: str | None = None

    def describe(self) -> str:
        """Return a URL-like name for logs (never the password)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.use_tls else 'mqtt'}://{host}:{self.port}"


@dataclass
class LinkStats:
    """Counters of one MQTT link."""

    connects: int = 0
    published: int = 0
    publish_failed: int = 0
    received: int = 0
    rejected: int = 0


@dataclass
class _Subscription:
    topic_filter: str
    qos: int
    handler: Handler


@dataclass
class StatusTopic:
    """A retained topic that says online/offline; offline is also the will."""

    topic: str
    online: Callable[[], bytes]
    offline: bytes


def _queue(paho_client: paho.Client, messages: Sequence[tuple[str, bytes]], qos: int) -> None:
    for topic, payload in messages:
        info = paho_client.publish(topic, payload, qos)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise aiomqtt.MqttCodeError(info.rc, "could not publish message")


def _write_unobserved(paho_client: paho.Client, messages: Sequence[tuple[str, bytes]]) -> None:
    """Queue QoS 0 messages and write what the socket takes now, with on_publish unset.

    With a callback set, paho builds a reason code and properties for every QoS 0 message
    it writes, which more than doubles its CPU per message; aiomqtt only needs the callback
    for publishes it awaits, and the caller checked that none is queued (want_write() was
    False). PUBACKs (QoS 1 confirmations) arrive on reads, which cannot happen in here.
    """
    on_publish = paho_client.on_publish
    paho_client.on_publish = None
    try:
        _queue(paho_client, messages, 0)
        paho_client.loop_write()
    finally:
        paho_client.on_publish = on_publish


def _send_without_delay(client: aiomqtt.Client) -> None:
    """Turn Nagle's algorithm off, as brokers do for their side.

    With it on, a small packet (a safety event) waits for the ACK of the previous one
    (say a reading), and delayed ACKs make that up to 40 ms.
    """
    sock = client._client.socket()
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class MqttLink:
    """Keep one MQTT connection up: reconnect with backoff, resubscribe, status + will."""

    def __init__(
        self,
        name: str,
        endpoint: Callable[[], BrokerEndpoint],
        client_id: str,
        status: StatusTopic,
        keepalive_s: int = 30,
        backoff: Backoff | None = None,
        on_state: Callable[[str, str], None] | None = None,
    ) -> None:
        self.name = name
        self._endpoint = endpoint
        self._client_id = client_id
        self._status = status
        self._keepalive_s = keepalive_s
        self._backoff = backoff or Backoff(1.0, 30.0)
        self._on_state = on_state
        self._subs: list[_Subscription] = []
        self._connect_hooks: list[Callable[[], Awaitable[None]]] = []
        self._client: aiomqtt.Client | None = None
        # Not "disconnected": the first failed attempt must count as a change and be logged.
        self.state = "starting"
        self.broker = ""
        self.stats = LinkStats()

    @property
    def connected(self) -> bool:
        """True while a session with the broker is up."""
        return self._client is not None

    def on_connect(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run hook after every (re)connect, e.g. to restore retained state the broker lost."""
        self._connect_hooks.append(hook)

    def subscribe(self, topic_filter: str, handler: Handler, qos: int = 1) -> None:
        """Register a handler; it is (re)subscribed on every connect."""
        self._subs.append(_Subscription(topic_filter, qos, handler))

    async def publish(
        self, topic: str, payload: bytes, qos: int = 0, retain: bool = False
    ) -> None:
        """Publish now; raise MqttUnavailable when not connected."""
        client = self._client
        if client is None:
            self.stats.publish_failed += 1
            raise MqttUnavailable(self.broker or self.name)
        try:
            await client.publish(topic, payload, qos=qos, retain=retain)
        except aiomqtt.MqttError as err:
            self.stats.publish_failed += 1
            raise MqttUnavailable(self.broker) from err
        self.stats.published += 1

    async def publish_many(self, messages: Sequence[tuple[str, bytes]], qos: int = 0) -> None:
        """Publish messages in order with one wait for the lot; raise MqttUnavailable when down.

        Returns once the last one has been written to the socket (QoS 0) or acknowledged
        (QoS 1+); the client sends in order, so that covers the earlier ones' hand-over.
        """
        client = self._client
        if client is None:
            self.stats.publish_failed += len(messages)
            raise MqttUnavailable(self.broker or self.name)
        if not messages:
            return
        # aiomqtt wakes the caller once per message; put all but the last on the underlying
        # paho client directly (same connection, same order), then wait for the last only.
        paho_client = client._client
        *head, last = messages
        try:
            if qos == 0 and head and not paho_client.want_write():
                _write_unobserved(paho_client, head)
            else:
                _queue(paho_client, head, qos)
            # Always through aiomqtt: it also re-arms (and then clears) its socket writer.
            await client.publish(*last, qos=qos)
        except aiomqtt.MqttError as err:
            self.stats.publish_failed += len(messages)
            raise MqttUnavailable(self.broker) from err
        self.stats.published += len(messages)

    async def run(self, ready: Callable[[], None]) -> None:
        """Connect and stay connected until cancelled (a dead broker never stops the rest)."""
        ready()
        while True:
            endpoint = self._endpoint()
            self.broker = endpoint.describe()
            try:
                await self._session(endpoint)
            except aiomqtt.MqttError as err:
                self._set_state("disconnected", str(err))
            delay = self._backoff.next_delay()
            log.debug("%s: reconnecting to %s in %.1fs", self.name, self.broker, delay)
            await asyncio.sleep(delay)

    async def _session(self, endpoint: BrokerEndpoint) -> None:
        will = aiomqtt.Will(self._status.topic, self._status.offline, qos=1, retain=True)
        tls = None
        if endpoint.use_tls:
            tls = aiomqtt.TLSParameters(
                ca_certs=endpoint.ca_file, certfile=endpoint.cert_file, keyfile=endpoint.key_file
            )
        client = aiomqtt.Client(
            endpoint.host,
            endpoint.port,
            identifier=self._client_id,
            username=endpoint.username,
            password=endpoint.password,
            will=will,
            keepalive=self._keepalive_s,
            tls_params=tls,
            timeout=10,
        )
        async with client:
            _send_without_delay(client)
            self._client = client
            self.stats.connects += 1
            self._backoff.reset()
            try:
                await client.publish(self._status.topic, self._status.online(), qos=1, retain=True)
                for sub in self._subs:
                    await client.subscribe(sub.topic_filter, qos=sub.qos)
                for hook in self._connect_hooks:
                    try:
                        await hook()
                    except MqttUnavailable as err:
                        log.warning("%s: on-connect publish failed: %s", self.name, err)
                self._set_state("connected", self.broker)
                async for message in client.messages:
                    await self._dispatch(message)
            except asyncio.CancelledError:
                # A clean stop says offline itself; the will covers every other way out.
                await self._say_offline(client)
                raise
            finally:
                self._client = None

    async def _say_offline(self, client: aiomqtt.Client) -> None:
        try:
            async with asyncio.timeout(2.0):
                await client.publish(self._status.topic, self._status.offline, qos=1, retain=True)
        except (aiomqtt.MqttError, TimeoutError) as err:
            log.warning("%s: could not publish offline status: %s", self.name, err)
        self._set_state("stopped", "clean stop")

    async def _dispatch(self, message: aiomqtt.Message) -> None:
        self.stats.received += 1
        payload = message.payload
        if isinstance(payload, str):
            data = payload.encode()
        elif isinstance(payload, bytes | bytearray):
            data = bytes(payload)
        else:
            data = str(payload).encode() if payload is not None else b""
        topic = message.topic.value
        for sub in self._subs:
            if message.topic.matches(sub.topic_filter):
                try:
                    await sub.handler(topic, data)
                except (ValueError, EdgeError) as err:
                    # Bad payloads are counted and dropped; they never take the link down.
                    self.stats.rejected += 1
                    log.debug("%s: rejected message on %s: %s", self.name, topic, err)
                except Exception:
                    # A handler bug must not end the session: a retained message would be
                    # redelivered on every reconnect and crash the link in a loop.
                    self.stats.rejected += 1
                    log.exception("%s: handler for %s failed on a message on %s", self.name,
                                  sub.topic_filter, topic)

    def _set_state(self, state: str, detail: str) -> None:
        if state == self.state:
            return
        self.state = state
        if state == "connected":
            log.info("%s: connected to %s", self.name, detail)
        elif state == "disconnected":
            log.warning("%s: broker %s unavailable (%s); retrying with backoff",
                        self.name, self.broker, detail)
        else:
            log.info("%s: %s (%s)", self.name, state, detail)
        if self._on_state is not None:
            self._on_state(state, detail)
