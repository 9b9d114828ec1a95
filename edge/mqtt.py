"""The MQTT link: the only module that uses the MQTT client library."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

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


@dataclass(frozen=True)
class LinkOptions:
    """Protocol details of one link; the defaults suit the local broker."""

    protocol: int = 4  # 4 = MQTT 3.1.1, 5 = MQTT 5
    max_inflight: int = 20  # QoS 1 messages awaiting PUBACK at once
    # Declare the link dead when nothing (not even a PINGRESP) came in for this many keepalives.
    # paho alone notices only after ~2 keepalives; the uplink promises 1.5.
    dead_after_keepalives: float | None = None


# One outgoing message: topic, payload, and a message expiry in seconds (MQTT 5 only).
Outgoing = tuple[str, bytes, float | None]


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


class _AckCounter:
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


def _queue_confirmed(client: aiomqtt.Client, messages: Sequence[Outgoing], acks: _AckCounter,
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
        options: LinkOptions | None = None,
    ) -> None:
        self.name = name
        self.options = options or LinkOptions()
        self.connected_since: float | None = None  # wall-clock time of the current session's start
        self._endpoint = endpoint
        self._client_id = client_id
        self._status = status
        self._keepalive_s = keepalive_s
        self._backoff = backoff or Backoff(1.0, 30.0)
        self._on_state = on_state
        self._subs: list[_Subscription] = []
        self._connect_hooks: list[Callable[[], Awaitable[None]]] = []
        self._client: aiomqtt.Client | None = None
        self._session_over = asyncio.Event()  # set when the current session ends
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

    async def publish_status(self) -> None:
        """Publish the retained online status again (the platform asked for it)."""
        await self.publish(self._status.topic, self._status.online(), qos=1, retain=True)

    async def publish_confirmed(self, messages: Sequence[Outgoing], ack_timeout_s: float) -> None:
        """Publish at QoS 1 and return once the broker acknowledged every one (PUBACK).

        Up to options.max_inflight travel at once (paho queues the rest in order). Raises
        MqttUnavailable when not connected, when the session ends or when the
        acknowledgements take longer than ack_timeout_s: then none of them counts as
        delivered (the caller sends them again: at-least-once).
        """
        client = self._client
        if client is None:
            raise MqttUnavailable(self.broker or self.name)
        if not messages:
            return
        acks = _AckCounter(len(messages))
        over = self._session_over
        try:
            _queue_confirmed(client, messages, acks, v5=self.options.protocol == 5)
        except aiomqtt.MqttError as err:
            self.stats.publish_failed += len(messages)
            raise MqttUnavailable(self.broker) from err
        all_acked: asyncio.Future[bool] = asyncio.ensure_future(acks.done.wait())
        ended: asyncio.Future[bool] = asyncio.ensure_future(over.wait())
        try:
            # The end of the session is an answer too: unacknowledged messages go again then.
            waiting: set[asyncio.Future[bool]] = {all_acked, ended}
            await asyncio.wait(waiting, timeout=ack_timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            all_acked.cancel()
            ended.cancel()
        if not acks.done.is_set():
            self.stats.publish_failed += len(messages)
            raise MqttUnavailable(self.broker or self.name)
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
        try:
            context = tls_context(endpoint) if endpoint.use_tls else None
        except (OSError, ssl.SSLError) as err:
            raise aiomqtt.MqttError(f"TLS files unusable: {err}") from err
        client = aiomqtt.Client(
            endpoint.host,
            endpoint.port,
            identifier=self._client_id,
            username=endpoint.username,
            password=endpoint.password,
            will=will,
            keepalive=self._keepalive_s,
            tls_context=context,
            timeout=10,
            protocol=(aiomqtt.ProtocolVersion.V5 if self.options.protocol == 5
                      else aiomqtt.ProtocolVersion.V311),
            max_inflight_messages=self.options.max_inflight,
        )
        async with client:
            _send_without_delay(client)
            self._client = client
            self._session_over = asyncio.Event()
            self.connected_since = time.time()
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
                watchdog = None
                if self.options.dead_after_keepalives is not None:
                    watchdog = asyncio.create_task(self._watch_keepalive(client))
                try:
                    async for message in client.messages:
                        await self._dispatch(message)
                finally:
                    if watchdog is not None:
                        watchdog.cancel()
                        await asyncio.gather(watchdog, return_exceptions=True)
            except asyncio.CancelledError:
                # A clean stop says offline itself; the will covers every other way out.
                await self._say_offline(client)
                raise
            finally:
                self._client = None
                self.connected_since = None
                self._session_over.set()

    async def _watch_keepalive(self, client: aiomqtt.Client) -> None:
        """Cut a link whose broker stopped answering, within dead_after_keepalives x keepalive.

        A black-holed network keeps the TCP connection open, and paho alone gives up only
        after up to two keepalives. So send our own PINGREQ every half keepalive; when one
        stays unanswered past the rest of the budget, shut the socket down: paho sees the
        connection end, the session ends and the link reconnects.
        """
        assert self.options.dead_after_keepalives is not None
        ping_every = self._keepalive_s / 2
        answer_within = self.options.dead_after_keepalives * self._keepalive_s - ping_every
        paho_client = client._client
        sent_at: float | None = None  # our unanswered PINGREQ
        last_ping = time.monotonic()
        while True:
            await asyncio.sleep(min(1.0, self._keepalive_s / 10))
            now = time.monotonic()
            # paho sets _ping_t when a PINGREQ goes out and back to 0 on the PINGRESP.
            outstanding = bool(getattr(paho_client, "_ping_t", 0))
            if sent_at is not None and not outstanding:
                sent_at = None  # answered
            if sent_at is not None and now - sent_at > answer_within:
                log.warning("%s: no answer from %s for %.1fs (keepalive %ds): dropping the link",
                            self.name, self.broker, now - sent_at + ping_every, self._keepalive_s)
                sock = paho_client.socket()
                if isinstance(sock, socket.socket):
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                return
            if sent_at is None and not outstanding and now - last_ping >= ping_every:
                paho_client._send_pingreq()  # on the loop thread that drives paho
                sent_at = last_ping = now

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
