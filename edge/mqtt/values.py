"""Values of the MQTT layer: where a broker is, link options, status topics, counters."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

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
class Subscription:
    """A topic filter and its handler; retained=False drops retained messages (counted rejected)."""

    topic_filter: str
    qos: int
    handler: Handler
    retained: bool = True


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
