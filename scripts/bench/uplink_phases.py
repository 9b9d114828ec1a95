"""The four measurements of the uplink bench (scripts/bench_uplink.py): a live rate, b drain,
c loss after kill -9 next to a Mosquitto bridge, d RSS with a large backlog."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import free_port
from bench.uplink_fill import event_payload, fill_events, fill_telemetry, store_only_rate
from bench.uplink_rig import (
    EVENT_TOPIC,
    GATEWAY,
    SITE,
    Collector,
    Counter,
    GatewayChild,
    start_broker,
    stop,
    write_config,
)


@dataclass
class Rig:
    """What every phase shares: the temp dir, the gateway's local broker, the child's script."""

    directory: Path
    local_port: int
    script: Path
    inflight: int = 100
    producers: int = 4
    profile: Path | None = None


def _window(counter: Counter, seconds: float) -> float:
    """Messages/s the counter saw over the next `seconds`."""
    c0, t0 = counter.count, time.monotonic()
    time.sleep(seconds)
    return (counter.count - c0) / (time.monotonic() - t0)


def live_rate(rig: Rig, seconds: float, warm: float) -> dict[str, Any]:
    """a. The gateway recording events flat out vs the bare client, both to the same central broker."""
    port = free_port()
    central = start_broker(rig.directory, port)
    out: dict[str, Any] = {"window_s": seconds, "inflight": rig.inflight, "producers": rig.producers}
    try:
        counter = Counter(port)
        child = GatewayChild(rig.script, write_config(rig.directory, "a", rig.local_port, port, 100_000.0,
                                                      rig.inflight), produce=-1, producers=rig.producers,
                             profile=rig.profile)
        try:
            child.wait_ready()
            child.wait(lambda g: g.stat["connected"], 30, "uplink connection")
            time.sleep(warm)
            a0, t0 = child.stat["accepted"], time.monotonic()
            out["uplink_per_s"] = round(_window(counter, seconds), 1)
            out["recorded_per_s"] = round((child.stat["accepted"] - a0) / (time.monotonic() - t0), 1)
            out["uplink_backlog_at_end"] = child.stat["accepted"] - child.stat["delivered"]
        finally:
            child.stop()
        out["gateway_log_warnings"] = child.log_lines("WARNING")
        out["gateway_log_pending_publish"] = child.log_lines("pending publish calls")
        # The same commits without the uplink or the rest of the gateway: the store's own ceiling.
        out["store_only_per_s"] = round(asyncio.run(store_only_rate(rig.directory / "a-store", seconds,
                                                                    rig.producers)), 1)
        counter.stop()
        payload = rig.directory / "payload.json"
        payload.write_bytes(event_payload())
        out["payload_bytes"] = len(payload.read_bytes())
        raw_script = Path(__file__).with_name("uplink_raw.py")
        for kind in ("paho", "aiomqtt"):
            counter = Counter(port)
            # stderr dropped: aiomqtt warns about every publish beyond 10 pending (counted for the gateway).
            proc = subprocess.Popen([sys.executable, str(raw_script), kind, str(port), EVENT_TOPIC,
                                     str(warm + seconds + 0.5), str(rig.inflight), str(payload)],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            time.sleep(warm)
            out[f"raw_{kind}_per_s"] = round(_window(counter, seconds), 1)
            proc.communicate(timeout=60)
            counter.stop()
    finally:
        stop(central)
    out["uplink_vs_raw"] = round(out["uplink_per_s"] / max(1e-9, out["raw_paho_per_s"]), 3)
    out["uplink_vs_raw_aiomqtt"] = round(out["uplink_per_s"] / max(1e-9, out["raw_aiomqtt_per_s"]), 3)
    return out


def _drain(rig: Rig, name: str, topic: str, want: int, limit_s: float) -> dict[str, Any]:
    """Start central and a gateway on an outbox filled beforehand; follow the arrivals for limit_s at most."""
    port = free_port()
    central = start_broker(rig.directory, port)
    counter = Counter(port, topic)
    child = GatewayChild(rig.script, write_config(rig.directory, name, rig.local_port, port,
                                                  RATES[name], rig.inflight))
    began = time.time()
    peak = 0.0
    try:
        # The window starts once the gateway is up: its start-up (imports, store, connect) may take
        # seconds on a loaded box, and a short window would otherwise measure only that.
        child.wait_ready()
        deadline = time.monotonic() + limit_s
        while counter.count < want and time.monotonic() < deadline and child.proc.poll() is None:
            time.sleep(0.2)
            peak = max(peak, child.rss_mb())
    finally:
        child.stop()
        stop(central)
        counter.stop()
    first = counter.first_at(1)
    last_at, got = counter.series[-1]
    done_at = counter.first_at(want) if got >= want else None
    # The counter reports every COUNTER_PERIOD_S, so the first arrival may be up to one period
    # before its sample: adding the period makes the rate a lower bound, and never a division
    # by zero when a small quick-run backlog arrives within one sample.
    span = (done_at or last_at) - (first or last_at) + COUNTER_PERIOD_S
    return {"delivered": min(got, want), "complete": got >= want,
            "seconds_from_start": None if done_at is None else round(done_at - began, 2),
            "per_s": round(min(got, want) / span, 1), "peak_rss_mb": round(peak, 1)}


COUNTER_PERIOD_S = 0.2  # scripts/bench/mqtt_counter.py's reporting interval
RATES = {"b": 100_000.0, "b-default": 500.0, "d-full": 100_000.0}


def drain_rate(rig: Rig, count: int, default_window_s: float) -> dict[str, Any]:
    """b. A backlog from an outage, drained at a high replay_rate and (for a while) at the default."""
    fill_rate = fill_events(rig.directory / "b", count)
    shutil.copytree(rig.directory / "b", rig.directory / "b-default")
    fast = _drain(rig, "b", EVENT_TOPIC, count, 900.0)
    default = _drain(rig, "b-default", EVENT_TOPIC, count, default_window_s)
    return {"backlog": count, "fill_per_s": round(fill_rate, 1), "replay_rate": RATES["b"],
            "drain_per_s": fast["per_s"], "drain_s": fast["seconds_from_start"], "complete": fast["complete"],
            "default_replay_rate": RATES["b-default"], "default_window_s": default_window_s,
            "default_per_s": default["per_s"], "default_delivered": default["delivered"],
            "default_full_drain_s_estimate": round(count / max(1e-9, default["per_s"]), 1)}


def _publish(port: int, count: int) -> None:
    """QoS 1 bench events to a broker, each acknowledged before returning."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{time.time_ns()}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = [client.publish(EVENT_TOPIC, event_payload(n, n), qos=1) for n in range(1, count + 1)]
    for info in infos:
        info.wait_for_publish(timeout=30)
    assert all(info.is_published() for info in infos), "the bridge broker did not acknowledge every event"
    client.loop_stop()
    client.disconnect()


def _bridge(rig: Rig, count: int, kill: bool) -> int:
    """Events that reach central through a Mosquitto bridge, after a kill -9 of it (or not) mid-outage."""
    tag = "kill" if kill else "nokill"
    persist = rig.directory / f"bridge-{tag}"
    persist.mkdir()
    central_port, port = free_port(), free_port()
    # Everything but restart_timeout (1 s, to keep the bench short) at Mosquitto's defaults:
    # autosave_interval 1800 s. max_queued_messages 0 (no limit; the default 1000 would drop more).
    extra = (f"persistence true\npersistence_location {persist}/\nconnection central\n"
             f"address 127.0.0.1:{central_port}\ntopic campus/# out 1\ncleansession false\n"
             "restart_timeout 1\n")
    # The collector's subscription must exist before the bridge can reach central, or what
    # the bridge forwards in the first moments is lost to the count, not by the bridge: a
    # persistent session, saved by a clean stop of central, is there from its first second.
    central_persist = rig.directory / f"central-{tag}"
    central_persist.mkdir()
    central_extra = f"persistence true\npersistence_location {central_persist}/\n"
    central = start_broker(rig.directory, central_port, central_extra, name=f"central-{tag}")
    Collector(central_port, client_id=f"collector-{tag}").stop()
    stop(central)
    bridge = start_broker(rig.directory, port, extra, name=f"bridge-{tag}")
    _publish(port, count)
    if kill:
        stop(bridge, kill=True)
    central = start_broker(rig.directory, central_port, central_extra, name=f"central-{tag}")
    collector = Collector(central_port, client_id=f"collector-{tag}")
    if kill:
        bridge = start_broker(rig.directory, port, extra, name=f"bridge-{tag}")
    collector.settle(count, quiet_s=5.0, timeout=60.0)
    collector.stop()
    stop(bridge)
    stop(central)
    return len(collector.ids)


def _ours(rig: Rig, count: int) -> int:
    """Events that reach central from our gateway, killed -9 after recording them with central down."""
    central_port = free_port()
    config = write_config(rig.directory, "c", rig.local_port, central_port, 100_000.0, rig.inflight)
    child = GatewayChild(rig.script, config, produce=count, producers=1)
    child.wait_ready()
    child.wait(lambda g: g.stat["accepted"] >= count, 120, f"{count} accepted events")
    child.stop(kill=True)
    central = start_broker(rig.directory, central_port)
    collector = Collector(central_port)
    child = GatewayChild(rig.script, config)
    collector.settle(count, quiet_s=5.0, timeout=120.0)
    collector.stop()
    child.stop()
    stop(central)
    return len(collector.ids)


def kill9_loss(rig: Rig, count: int) -> dict[str, Any]:
    """c. Same outage + kill -9 for a Mosquitto bridge and for the gateway: events lost by each."""
    control = _bridge(rig, count, kill=False)
    bridged = _bridge(rig, count, kill=True)
    ours = _ours(rig, count)
    return {"events": count, "bridge_received": bridged, "bridge_lost": count - bridged,
            "bridge_no_kill_received": control, "uplink_received": ours, "uplink_lost": count - ours}


def rss(rig: Rig, rows: int, settle_s: float, drain_s: float) -> dict[str, Any]:
    """d. The gateway's RSS with an empty outbox and with rows of backlog (broker down), then draining."""
    fill_rate, nbytes = fill_telemetry(rig.directory / "d-full", rows)
    down = free_port()
    figures: dict[str, float] = {}
    for name in ("d-empty", "d-full"):
        child = GatewayChild(rig.script, write_config(rig.directory, name, rig.local_port, down, 100_000.0,
                                                      rig.inflight))
        try:
            child.wait_ready()
            time.sleep(settle_s)
            samples = []
            for _ in range(5):
                samples.append(child.rss_mb())
                time.sleep(0.2)
            figures[name] = max(samples)
        finally:
            child.stop()
    topic = f"campus/v1/{SITE}/{GATEWAY}/telemetry"
    drain = _drain(rig, "d-full", topic, rows, drain_s)
    added = figures["d-full"] - figures["d-empty"]
    return {"backlog_rows": rows, "backlog_payload_mb": round(nbytes / 2**20, 1),
            "fill_per_s": round(fill_rate, 1),
            "rss_empty_mb": round(figures["d-empty"], 1), "rss_backlog_mb": round(figures["d-full"], 1),
            "uplink_added_mb": round(added, 1), "rss_draining_peak_mb": drain["peak_rss_mb"],
            "drain_window_s": drain_s, "drained_in_window": drain["delivered"], "drain_per_s": drain["per_s"]}
