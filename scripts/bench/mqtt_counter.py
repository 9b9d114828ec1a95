"""Count messages on a topic filter and print the running total every 0.2 s (bench helper).

A bare-socket MQTT 3.1.1 subscriber: it only parses fixed headers (and the topic of QoS 1
messages), so it keeps up with far more than any publisher in the bench. A slow counting
subscriber would make Mosquitto queue and then drop QoS 0 messages for it, and the bench
would measure the counter instead of the publisher.
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import threading
import time


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack(">H", len(data)) + data


def _packet(kind: int, body: bytes) -> bytes:
    length, header = len(body), bytearray([kind])
    while True:
        byte, length = length & 0x7F, length >> 7
        header.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(header) + body


def connect(host: str, port: int, filters: list[tuple[str, int]]) -> socket.socket:
    """Connect (clean session, keepalive off) and subscribe; return the socket."""
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    client_id = f"bench-counter-{time.monotonic_ns()}"
    sock.sendall(_packet(0x10, _string("MQTT") + bytes([4, 0x02, 0, 0]) + _string(client_id)))
    body = struct.pack(">H", 1) + b"".join(_string(f) + bytes([q]) for f, q in filters)
    sock.sendall(_packet(0x82, body))
    return sock


def main() -> None:
    """Subscribe to argv[3] on argv[1]:argv[2]; print totals; with argv[4], also event arrival times."""
    host, port, topic_filter = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    event_topic = sys.argv[4] if len(sys.argv) > 4 else None
    filters = [(topic_filter, 0)] + ([(event_topic, 1)] if event_topic else [])
    sock = connect(host, port, filters)
    event_name = event_topic.encode() if event_topic else None
    counts = [0]
    lock = threading.Lock()  # one line at a time on stdout from both threads

    def say(item: dict[str, float]) -> None:
        with lock:
            print(json.dumps(item), flush=True)

    def report() -> None:
        while True:
            time.sleep(0.2)
            say({"count": counts[0], "at": time.time()})

    threading.Thread(target=report, daemon=True).start()
    buf = b""
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            return
        buf += chunk
        pos, end, count = 0, len(buf), 0
        while pos + 2 <= end:
            first = buf[pos]
            length, shift, i = 0, 0, pos + 1
            while i < end:
                byte = buf[i]
                length |= (byte & 0x7F) << shift
                shift += 7
                i += 1
                if not byte & 0x80:
                    break
            else:
                break  # header incomplete
            if i + length > end or (byte & 0x80):
                break
            if first >> 4 == 3:  # PUBLISH
                if (first >> 1) & 3:  # QoS 1: the event topic; time it and acknowledge
                    topic_len = struct.unpack_from(">H", buf, i)[0]
                    topic = buf[i + 2:i + 2 + topic_len]
                    packet_id = buf[i + 2 + topic_len:i + 4 + topic_len]
                    sock.sendall(b"\x40\x02" + packet_id)
                    if topic == event_name:
                        say({"at": time.time()})
                    else:
                        count += 1
                else:
                    count += 1
            pos = i + length
        buf = buf[pos:]
        counts[0] += count


if __name__ == "__main__":
    main()
