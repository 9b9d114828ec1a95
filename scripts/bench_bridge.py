#!/usr/bin/env python3
"""Bridge benchmark: node readings through the whole gateway vs the bare MQTT client, panic latency.

Run with the project's venv: `.venv/bin/python scripts/bench_bridge.py [--duration S]`.
Prints one JSON object. Everything runs side by side in one run on this machine:
- a Mosquitto on a free port;
- bridge: `edge run` as a subprocess reading N simulated nodes on ptys, which write TELEMETRY
  frames as fast as the pty takes them (codec -> bus -> store -> local broker); the frames
  are encoded up front so the producer threads hardly compete with the gateway for CPU;
- raw: a subprocess publishing the same topics and payloads with the bare MQTT client
  (single-threaded paho, its fastest plain use);
- a bare-socket subscriber subprocess counting what reaches the broker in each phase (fast
  enough that the broker never queues or drops for it: see broker_dropped_notices);
- CPU% of the publisher under test, the broker, the counter and the node producers;
- panic latency: panic-button EVENT frames written to a node's pty while 100 readings/s of
  telemetry flow, timed until the stored event arrives on the local broker.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import cpu_seconds, free_port  # noqa: E402

from firmware_bridge.node_protocol import ReadingKind  # noqa: E402
from firmware_bridge.simulator import SimulatedNode  # noqa: E402
from firmware_bridge.streams import FdStream, open_pty  # noqa: E402

READINGS_PER_FRAME = 10
FLOOD_BLOB_FRAMES = 256  # frames per write when flooding (about 10 KiB)
# Single-threaded on purpose: with loop_start() the publishing thread holds the GIL and
# paho's network thread waits up to a switch interval (5 ms) for it around every send,
# so the "raw" side measured a few hundred messages/s. Here publish() writes inline and
# loop(0) now and then services the socket (acks, keepalive).
RAW_PUBLISHER = """
import json, sys, time
import paho.mqtt.client as paho
host, port, prefix, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
c = paho.Client(paho.CallbackAPIVersion.VERSION2)
c.connect(host, port)
metrics = ["temperature", "humidity", "co2", "pm25", "illuminance", "noise", "motion",
           "door_open", "smoke_alarm", "panic_button"]
end = time.monotonic() + seconds
n = 0
while time.monotonic() < end:
    for m in metrics:
        body = {"metric": m, "value": 21.5, "unit": "C", "ts": time.time(), "room_id": "r1"}
        c.publish(f"{prefix}/reading/node{n % 4}/{m}",
                  json.dumps(body, separators=(",", ":")).encode(), qos=0)
    n += 1
    c.loop(timeout=0)
while c.want_write():
    c.loop_write()
c.disconnect()
print(n * len(metrics))
"""


def start_mosquitto(directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    conf = directory / "mosquitto.conf"
    stay = "user root\n" if os.geteuid() == 0 else ""
    # QoS 0 messages to a connected subscriber count against max_queued_messages too: once
    # that many are waiting for a slow subscriber, Mosquitto drops them (and logs a notice).
    # set_tcp_nodelay: with Nagle on (Mosquitto's default) an event sent to the counting
    # subscriber right after a reading waits for that reading's delayed ACK, ~40 ms: the
    # broker's config, not the gateway's latency (production brokers should set it too).
    conf.write_text(f"{stay}listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    f"max_queued_messages 100000\nlog_dest file {directory / 'mosquitto.log'}\n"
                    "log_type error\nlog_type warning\nlog_type notice\nset_tcp_nodelay true\n")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    raise SystemExit("mosquitto did not start")


class Counter:
    """The counting subscriber subprocess; reads its running totals."""

    def __init__(self, port: int, topic_filter: str, event_topic: str | None = None) -> None:
        args = [sys.executable, str(REPO / "scripts/bench/mqtt_counter.py"), "127.0.0.1", str(port),
                topic_filter] + ([event_topic] if event_topic else [])
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        self.count = 0
        self.events: list[float] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            item = json.loads(line)
            if "count" in item:
                self.count = item["count"]
            else:
                self.events.append(item["at"])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def flood(stream_fd: int, node: SimulatedNode, stop: threading.Event, rate: float | None) -> None:
    """Write TELEMETRY frames to a pty master: as fast as it takes them, or at rate frames/s.

    Flat out, the frames are encoded once up front and written in large blocks, so the
    producer costs next to no CPU (it shares the machine with the gateway it measures).
    """
    blob = b"".join(node.telemetry() for _ in range(FLOOD_BLOB_FRAMES)) if not rate else b""
    next_at = time.monotonic()
    while not stop.is_set():
        try:
            os.write(stream_fd, blob or node.telemetry())
        except OSError:
            return
        if rate:
            next_at += 1 / rate
            time.sleep(max(0.0, next_at - time.monotonic()))


def gateway_config(directory: Path, port: int, ptys: list[str]) -> Path:
    config = {
        "site_id": "bench", "gateway_id": "gw-bench", "data_dir": str(directory / "data"),
        "log": {"level": "warning"},
        "mqtt": {"local": {"url": f"mqtt://127.0.0.1:{port}", "topic_prefix": "bench",
                           "discovery": {"enabled": False}}},
        "rooms": [{"id": "r1"}],
        "devices": [{"id": f"node{i}", "type": "node", "room_id": "r1", "port": p,
                     "heartbeat_s": 5} for i, p in enumerate(ptys)],
    }
    path = directory / "edge.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def measure_window(counter: Counter, pids: list[int], seconds: float) -> tuple[float, list[float]]:
    """Messages/s reaching the counting subscriber, and CPU% of each pid, over a window."""
    start_count, start_cpu, start = counter.count, [cpu_seconds(p) for p in pids], time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - start
    rate = (counter.count - start_count) / elapsed
    return rate, [100 * (cpu_seconds(p) - c) / elapsed for p, c in zip(pids, start_cpu, strict=True)]


def bridge_phase(masters: list[tuple[FdStream, str]], sims: list[SimulatedNode], counter: Counter,
                 gateway: subprocess.Popen[bytes], broker: subprocess.Popen[bytes],
                 duration: float) -> dict[str, object]:
    """Nodes flood their ptys; readings/s reaching the broker through the gateway."""
    stop = threading.Event()
    threads = [threading.Thread(target=flood, args=(m._fd, s, stop, None), daemon=True)
               for (m, _), s in zip(masters, sims, strict=True)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    watched = [gateway.pid, broker.pid, counter.proc.pid, os.getpid()]
    rate, (cpu, broker_cpu, counter_cpu, producer_cpu) = measure_window(counter, watched, duration)
    stop.set()
    for thread in threads:
        thread.join()
    return {"bridge_readings_per_s": round(rate), "bridge_cpu_percent": round(cpu),
            "bridge_other_cpu_percent": {"broker": round(broker_cpu), "counter": round(counter_cpu),
                                         "node_producers": round(producer_cpu)}}


def raw_phase(port: int, counter: Counter, broker: subprocess.Popen[bytes],
              duration: float) -> dict[str, object]:
    """The bare client publishes the same messages; readings/s reaching the broker."""
    raw = subprocess.Popen([sys.executable, "-c", RAW_PUBLISHER, "127.0.0.1", str(port),
                            "bench", str(duration + 1.5)], stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)
    rate, (cpu, broker_cpu, counter_cpu) = measure_window(
        counter, [raw.pid, broker.pid, counter.proc.pid], duration)
    sent = int(raw.communicate()[0].strip() or 0)
    return {"raw_readings_per_s": round(rate), "raw_cpu_percent": round(cpu),
            "raw_sent_per_s": round(sent / (duration + 1.5)),
            "raw_other_cpu_percent": {"broker": round(broker_cpu), "counter": round(counter_cpu)}}


def run(duration: float, nodes: int, rounds: int) -> dict[str, object]:
    out: dict[str, object] = {"duration_s": duration, "nodes": nodes, "cpus": os.cpu_count(),
                              "rounds_run": rounds}
    with tempfile.TemporaryDirectory(prefix="bench-bridge-") as tmp:
        directory = Path(tmp)
        broker, port = start_mosquitto(directory)
        masters = [open_pty() for _ in range(nodes)]
        gateway = subprocess.Popen(
            [sys.executable, "-m", "edge", "run", "--config",
             str(gateway_config(directory, port, [p for _, p in masters]))], cwd=REPO)
        counter = Counter(port, "bench/reading/#", "bench/event")
        try:
            time.sleep(3)  # gateway up, ports open
            sims = [SimulatedNode(f"node{i}", interval_s=0) for i in range(nodes)]
            rounds_out = []
            # Alternate the two phases so that machine noise hits both alike; report each
            # round's ratio and the median.
            for _ in range(rounds):
                bridge = bridge_phase(masters, sims, counter, gateway, broker, duration)
                time.sleep(2.0)  # let the backlog drain before the next phase
                raw = raw_phase(port, counter, broker, duration)
                rounds_out.append({**bridge, **raw,
                                   "bridge_vs_raw": round(bridge["bridge_readings_per_s"]
                                                          / raw["raw_readings_per_s"], 3)
                                   if raw["raw_readings_per_s"] else None})
                time.sleep(1.0)
            ratios = sorted(r["bridge_vs_raw"] or 0.0 for r in rounds_out)
            out.update(bridge_vs_raw=ratios[len(ratios) // 2], rounds=rounds_out)
            # --- panic latency under 100 readings/s of background telemetry
            time.sleep(1.0)
            stop = threading.Event()
            background = threading.Thread(
                target=flood, args=(masters[1 % nodes][0]._fd, sims[1 % nodes], stop,
                                    100 / READINGS_PER_FRAME), daemon=True)
            background.start()
            latencies = []
            panic_node = sims[0]
            for _ in range(100):
                seen = len(counter.events)
                sent = time.time()
                os.write(masters[0][0]._fd, panic_node.raise_alarm(ReadingKind.PANIC_BUTTON))
                deadline = time.monotonic() + 2
                while len(counter.events) <= seen and time.monotonic() < deadline:
                    time.sleep(0.0005)
                if len(counter.events) > seen:
                    latencies.append((counter.events[seen] - sent) * 1000)
                time.sleep(0.05)
            stop.set()
            background.join()
            latencies.sort()
            out.update(
                panic_events=len(latencies),
                panic_latency_ms_p50=round(statistics.median(latencies), 1) if latencies else None,
                panic_latency_ms_p99=round(latencies[int(0.99 * (len(latencies) - 1))], 1)
                if latencies else None,
            )
        finally:
            log_text = (directory / "mosquitto.log").read_text(errors="replace") \
                if (directory / "mosquitto.log").exists() else ""
            out["broker_dropped_notices"] = log_text.count("being dropped")
            counter.stop()
            gateway.send_signal(signal.SIGTERM)
            gateway.wait(timeout=15)
            broker.terminate()
            broker.wait()
            for master, _ in masters:
                master.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per throughput window")
    parser.add_argument("--nodes", type=int, default=4, help="simulated nodes on ptys")
    parser.add_argument("--rounds", type=int, default=3, help="alternating bridge/raw rounds")
    parser.add_argument("--no-modbus", action="store_true", help="skip the Modbus RTU figure")
    args = parser.parse_args()
    result = run(args.duration, args.nodes, args.rounds)
    if not args.no_modbus:
        import asyncio

        from firmware_bridge.modbus.bench import bench_rtu_polls

        result["modbus_rtu"] = asyncio.run(bench_rtu_polls(duration_s=args.duration))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
