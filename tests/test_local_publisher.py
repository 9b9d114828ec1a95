"""Local topics and payloads for readings, device status and stored safety events."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Sequence

import pytest

from edge.bus import Bus
from edge.events import DeviceStatus, Envelope, Reading, SafetyEvent, Severity
from edge.local_publisher import LocalPublisher, _json
from edge.mqtt import BrokerEndpoint, MqttLink, StatusTopic
from tests.conftest import cancel_and_wait


class RecordingLink(MqttLink):
    """An MqttLink that records what it is asked to publish instead of sending it."""

    def __init__(self) -> None:
        super().__init__("l", lambda: BrokerEndpoint("127.0.0.1", 1), "c",
                         StatusTopic("p/status", lambda: b"", b""))
        self.sent: list[tuple[str, bytes, int]] = []

    async def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        self.sent.append((topic, payload, qos))

    async def publish_many(self, messages: Sequence[tuple[str, bytes]], qos: int = 0) -> None:
        self.sent.extend((topic, payload, qos) for topic, payload in messages)


def publisher(bus: Bus | None = None, link: MqttLink | None = None) -> LocalPublisher:
    link = link or MqttLink("l", lambda: BrokerEndpoint("127.0.0.1", 1), "c",
                            StatusTopic("p/status", lambda: b"", b""))
    return LocalPublisher(bus or Bus(), link, "edge/gw1")


def test_reading_topic_and_payload() -> None:
    topic, payload, qos, retain = publisher().render(
        Reading("env1", "co2", 812.0, "ppm", 1_700_000_000.0, "r101"))
    assert (topic, qos, retain) == ("edge/gw1/reading/env1/co2", 0, False)
    assert json.loads(payload) == {"metric": "co2", "value": 812.0, "unit": "ppm",
                                   "ts": 1_700_000_000.0, "room_id": "r101"}


def test_device_status_is_retained() -> None:
    topic, payload, qos, retain = publisher().render(DeviceStatus("env1", False, 5.0, "r101", "gone"))
    assert (topic, qos, retain) == ("edge/gw1/device/env1/status", 1, True)
    assert json.loads(payload)["online"] is False


def test_stored_event_carries_seq_and_event_id() -> None:
    event = SafetyEvent("smoke_alarm", Severity.CRITICAL, 9.0, "node:n1", "r101", {"level": 3})
    topic, payload, qos, retain = publisher().render(Envelope(event, seq=42, stored_at=9.5))
    body = json.loads(payload)
    assert (topic, qos, retain) == ("edge/gw1/event", 1, False)
    assert body["seq"] == 42 and body["event_id"] == event.event_id
    assert body["severity"] == "critical" and body["data"] == {"level": 3}


@pytest.mark.parametrize("value", [812.0, 0.1 + 0.2, -3.5e-12, 1e22, math.nan, math.inf, -math.inf, 7, True])
@pytest.mark.parametrize(("unit", "room"), [("ppm", "r101"), ("°C", None), ('a"b\\', "r\n1")])
def test_reading_payload_is_exactly_the_json_of_the_dict(value: float, unit: str, room: str | None) -> None:
    reading = Reading("env1", "co2", value, unit, 1_700_000_000.123456, room)
    _, payload, _, _ = publisher().render(reading)
    assert payload == _json({"metric": "co2", "value": value, "unit": unit,
                             "ts": reading.ts, "room_id": room})


async def test_events_are_never_dropped_and_jump_the_readings_queue() -> None:
    bus, link = Bus(), RecordingLink()
    service = publisher(bus, link)
    for i in range(6000):  # more than the readings queue holds
        bus.publish(Reading("env1", "co2", float(i), "ppm", float(i)))
    event = SafetyEvent("panic_button", Severity.CRITICAL, 1.0, "node:n1", "r101")
    bus.publish(Envelope(event, seq=7, stored_at=1.5))
    bus.publish(DeviceStatus("env1", True, 2.0))
    task = asyncio.create_task(service.run(lambda: None))
    while len(link.sent) < 5002:
        await asyncio.sleep(0.01)
    await cancel_and_wait(task)
    assert [topic for topic, _, _ in link.sent[:2]] == ["edge/gw1/event", "edge/gw1/device/env1/status"]
    assert [qos for _, _, qos in link.sent[:2]] == [1, 1]
    values = [json.loads(payload)["value"] for _, payload, _ in link.sent[2:]]
    assert values == [float(i) for i in range(1000, 6000)]  # the oldest readings went
    assert service.published == 5002
