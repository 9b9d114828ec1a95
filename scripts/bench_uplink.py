#!/usr/bin/env python3
"""Uplink benchmark: live event rate vs the bare MQTT client, backlog drain, kill -9 loss next to a
Mosquitto bridge, and the daemon's RSS with a large backlog.

Run with the project's venv: `.venv/bin/python scripts/bench_uplink.py` (`--quick`: tiny sizes, for
the smoke test). Prints one JSON object (progress and a short text report go to stderr). All of it
runs side by side in one run on this machine, with real Mosquitto processes and the real gateway
(edge.app.Gateway, with no devices) in child processes of this script:
a. live: the gateway records safety events flat out (`--producers` concurrent record_event loops,
   each an SQLite commit of the event and its outbox row) for `--seconds`; events counted at the
   central broker per second, vs the bare client (paho, single-threaded, a sliding window of
   `--inflight`; and aiomqtt, batches of `--inflight` as MqttLink.publish_confirmed sends them)
   publishing the same payload bytes at QoS 1 to the same broker. uplink_vs_raw is against paho;
b. drain: `--backlog` events stored while the central broker was unreachable (Database.add_event,
   10k per transaction), then broker and gateway started: events/s until all arrived, with
   replay_rate 100000; and for `--default-window` s with the default replay_rate (500/s);
c. loss: `--bridge-events` QoS 1 events into a Mosquitto bridging `campus/#` to a central broker
   that is down (persistence on, default autosave), kill -9, restart, central up: what arrives;
   the same for the gateway (record, kill -9, restart, central up); and a bridge run without kill;
d. RSS: VmRSS of the gateway with an empty outbox and with `--rss-rows` telemetry rows queued
   (central down, after `--settle` s), then its peak while draining for `--rss-drain` s.
Nothing here asserts figures; the targets are reported next to them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
REPO = SCRIPT.parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(SCRIPT.parent))

TARGETS = {"uplink_vs_raw": 0.8, "uplink_lost": 0, "uplink_added_mb": 150.0}


async def serve(config_path: Path, produce: int, producers: int, profile: Path | None) -> int:
    """Child mode: run the Gateway, record `produce` events (-1: until stopped), print STAT lines."""
    import cProfile

    from bench.uplink_fill import bench_event
    from bench.uplink_rig import READY, STAT

    from edge.app import Gateway
    from edge.config_loader import load_config
    from edge.logs import setup_logging

    config = load_config(config_path)
    setup_logging(config.log.level, config.log.format)  # as `edge run` does: its log costs count too
    profiler = cProfile.Profile() if profile else None
    gateway = Gateway(config)
    ready = asyncio.Event()
    task = asyncio.create_task(gateway.run(on_ready=lambda _: ready.set()))
    await asyncio.wait([task, asyncio.create_task(ready.wait())], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        return int(task.result())
    print(READY, flush=True)
    accepted = [0]

    async def producer() -> None:
        while produce < 0 or accepted[0] < produce:
            accepted[0] += 1
            await gateway.record_event(bench_event(accepted[0]))

    async def report() -> None:
        while True:
            uplink = gateway.uplink
            stat = {"accepted": accepted[0], "at": time.time(),
                    "delivered": uplink.metrics.delivered.get("event", 0) if uplink else 0,
                    "connected": bool(uplink and uplink.link.connected)}
            print(STAT + json.dumps(stat), flush=True)
            await asyncio.sleep(0.1)

    if profiler is not None:
        profiler.enable()
    helpers = [asyncio.create_task(report())] + [asyncio.create_task(producer()) for _ in range(producers)]
    code = int(await task)
    for helper in helpers:
        helper.cancel()
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(str(profile))
    return code


def measure(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    """Run the four phases on one local broker; return the figures."""
    from bench.common import free_port
    from bench.uplink_phases import Rig, drain_rate, kill9_loss, live_rate, rss
    from bench.uplink_rig import start_broker, stop

    local_port = free_port()
    local = start_broker(directory, local_port)
    rig = Rig(directory, local_port, SCRIPT, args.inflight, args.producers, args.profile)
    out: dict[str, Any] = {}
    try:
        if "a" in args.phases:
            say(f"a. live rate, {args.seconds} s windows ...")
            out["live"] = live_rate(rig, args.seconds, args.warm)
        if "b" in args.phases:
            say(f"b. drain of {args.backlog} events ...")
            out["drain"] = drain_rate(rig, args.backlog, args.default_window)
        if "c" in args.phases:
            say(f"c. kill -9 with {args.bridge_events} events, bridge and gateway ...")
            out["kill9"] = kill9_loss(rig, args.bridge_events)
        if "d" in args.phases:
            say(f"d. RSS with {args.rss_rows} rows ...")
            out["rss"] = rss(rig, args.rss_rows, args.settle, args.rss_drain)
    finally:
        stop(local)
    return out


def verdicts(result: dict[str, Any]) -> dict[str, bool | None]:
    """Each figure against its target; None for a phase not run."""
    live, kill9, rss = result.get("live"), result.get("kill9"), result.get("rss")
    return {"uplink_vs_raw": None if live is None else live["uplink_vs_raw"] >= TARGETS["uplink_vs_raw"],
            "uplink_lost": None if kill9 is None else kill9["uplink_lost"] == 0,
            "uplink_added_mb": None if rss is None else rss["uplink_added_mb"] <= TARGETS["uplink_added_mb"]}


def say(text: str) -> None:
    """Progress and the text report go to stderr; stdout holds only the JSON."""
    print(text, file=sys.stderr, flush=True)


def report(result: dict[str, Any]) -> None:
    """The short text version on stderr."""
    live, drain, kill9, rss = (result.get(k) for k in ("live", "drain", "kill9", "rss"))
    if live:
        say(f"a. uplink {live['uplink_per_s']}/s vs paho {live['raw_paho_per_s']}/s "
            f"(ratio {live['uplink_vs_raw']}); aiomqtt {live['raw_aiomqtt_per_s']}/s; "
            f"recorded {live['recorded_per_s']}/s; store alone {live['store_only_per_s']}/s")
    if drain:
        say(f"b. {drain['backlog']} events drained at {drain['drain_per_s']}/s in {drain['drain_s']} s; "
            f"default replay_rate: {drain['default_per_s']}/s")
    if kill9:
        say(f"c. lost of {kill9['events']}: bridge {kill9['bridge_lost']}, uplink {kill9['uplink_lost']}")
    if rss:
        say(f"d. RSS empty {rss['rss_empty_mb']} MB, {rss['backlog_rows']} rows {rss['rss_backlog_mb']} MB "
            f"(+{rss['uplink_added_mb']}), draining peak {rss['rss_draining_peak_mb']} MB")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments; run the bench, or the gateway when called as the child."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10.0, help="a: measuring window (s)")
    parser.add_argument("--warm", type=float, default=2.0, help="a: warm-up before each window (s)")
    parser.add_argument("--producers", type=int, default=4, help="a: concurrent record_event loops")
    parser.add_argument("--inflight", type=int, default=100, help="uplink.inflight and the raw window")
    parser.add_argument("--backlog", type=int, default=100_000, help="b: events queued during the outage")
    parser.add_argument("--default-window", type=float, default=10.0, help="b: s at the default replay_rate")
    parser.add_argument("--bridge-events", type=int, default=2000, help="c: events in the kill -9 scenario")
    parser.add_argument("--rss-rows", type=int, default=1_000_000, help="d: outbox rows")
    parser.add_argument("--settle", type=float, default=5.0, help="d: s after ready before reading RSS")
    parser.add_argument("--rss-drain", type=float, default=20.0, help="d: s of draining to watch RSS")
    parser.add_argument("--profile", type=Path, help="a: cProfile the gateway's event loop into this file")
    parser.add_argument("--phases", default="abcd", help="which measurements to run (default abcd)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--produce", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return asyncio.run(serve(args.serve, args.produce, args.producers, args.profile))
    if args.quick:
        args.seconds, args.warm, args.backlog, args.default_window = 2.0, 1.0, 2000, 2.0
        args.bridge_events, args.rss_rows, args.settle, args.rss_drain = 200, 20_000, 1.0, 6.0
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-uplink-") as tmp:
        result = measure(args, Path(tmp))
    result["targets"] = TARGETS
    result["pass"] = verdicts(result)
    result["config"] = {k: getattr(args, k) for k in ("seconds", "warm", "producers", "inflight", "backlog",
                                                      "default_window", "bridge_events", "rss_rows", "quick")}
    result["machine"] = {"cores": os.cpu_count(), "python": platform.python_version(),
                         "machine": platform.machine()}
    result["wall_s"] = round(time.monotonic() - started, 1)
    report(result)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
