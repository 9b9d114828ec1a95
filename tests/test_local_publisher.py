"""Local topics and payloads for readings, device status and stored safety events."""

from __future__ import annotations

import json

from edge.bus import Bus
from edge.events import DeviceStatus, Envelope, Reading, SafetyEvent, Severity
from edge.local_publisher import LocalPublisher
from edge.mqtt import BrokerEndpoint, MqttLink, StatusTopic


def publisher() -> LocalPublisher:
    link = MqttLink("l", lambda: BrokerEndpoint("127.0.0.1", 1), "c",
                    StatusTopic("p/status", lambda: b"", b""))
    return LocalPublisher(Bus(), link, "edge/gw1")


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
