"""The bare-client side of the uplink bench: QoS 1 publishes of the uplink's payload bytes.

    python uplink_raw.py paho|aiomqtt PORT TOPIC SECONDS WINDOW PAYLOAD_FILE

paho: single-threaded, a sliding window of WINDOW unacknowledged messages (its fastest plain use;
with loop_start() the publishing thread and paho's network thread fight over the GIL).
aiomqtt: the library the gateway uses, WINDOW publishes gathered then awaited, batch after batch
(the shape of MqttLink.publish_confirmed). Prints one JSON line: acked, seconds.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any


def run_paho(port: int, topic: str, seconds: float, window: int, payload: bytes) -> int:
    """Publish until seconds have passed; return how many were acknowledged."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"raw-paho-{time.time_ns()}")
    client.max_inflight_messages_set(window)
    acked = [0]

    def on_publish(*_args: Any) -> None:
        acked[0] += 1

    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    sent = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        while sent - acked[0] < window:
            client.publish(topic, payload, qos=1)
            sent += 1
        client.loop(timeout=0.01)
    client.disconnect()
    return acked[0]


async def run_aiomqtt(port: int, topic: str, seconds: float, window: int, payload: bytes) -> int:
    """Batches of window QoS 1 publishes, each batch awaited whole; return how many were acknowledged."""
    import aiomqtt

    acked = 0
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"raw-aio-{time.time_ns()}",
                              max_inflight_messages=window) as client:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await asyncio.gather(*(client.publish(topic, payload, qos=1) for _ in range(window)))
            acked += window
    return acked


def main() -> None:
    """Parse argv, publish, print the JSON line."""
    kind, port, topic, seconds, window = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), \
        int(sys.argv[5])
    payload = Path(sys.argv[6]).read_bytes()
    began = time.monotonic()
    if kind == "paho":
        acked = run_paho(port, topic, seconds, window, payload)
    else:
        acked = asyncio.run(run_aiomqtt(port, topic, seconds, window, payload))
    print(json.dumps({"acked": acked, "seconds": round(time.monotonic() - began, 3)}), flush=True)


if __name__ == "__main__":
    main()
