"""The MQTT link: one broker connection kept up, with status, will, subscriptions and publishing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence

import aiomqtt

from edge.backoff import Backoff
from edge.errors import EdgeError, MqttUnavailable
from edge.mqtt.values import (
    BrokerEndpoint,
    Handler,
    LinkOptions,
    LinkStats,
    Outgoing,
    StatusTopic,
    Subscription,
)
from edge.mqtt.wire import (
    AckCounter,
    queue_confirmed,
    queue_messages,
    send_without_delay,
    tls_context,
    write_unobserved,
)

log = logging.getLogger("edge.mqtt")  # one logger for the layer (installers filter on it)


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
        self._subs: list[Subscription] = []
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

    def subscribe(self, topic_filter: str, handler: Handler, qos: int = 1, retained: bool = True) -> None:
        """Register a handler; it is (re)subscribed on every connect. retained=False: live messages only."""
        self._subs.append(Subscription(topic_filter, qos, handler, retained))

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
                write_unobserved(paho_client, head)
            else:
                queue_messages(paho_client, head, qos)
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
        acks = AckCounter(len(messages))
        over = self._session_over
        try:
            queue_confirmed(client, messages, acks, v5=self.options.protocol == 5)
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
            send_without_delay(client)
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
                if message.retain and not sub.retained:
                    self.stats.rejected += 1
                    log.warning("%s: ignored a retained message on %s (it would run again on every "
                                "reconnect); publish it without retain", self.name, topic)
                    continue
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
