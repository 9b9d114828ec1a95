#!/usr/bin/env python3
"""Console API benchmark: alert-list requests/s and latency with 10k stored alerts while the pipeline runs.

Run with the project's venv: `.venv/bin/python scripts/bench_console.py [--duration S] [--concurrency 1,8]`
(`--quick`: 2,000 alerts and 2 s windows, for the smoke test). Prints one JSON object (a short
text report goes to stderr). Everything runs in one run on this machine:
- a fresh data dir is seeded with N stored alerts (default 10,000, over 90 days) through the real
  edge.store.Store.add_event, each transition shaped by edge.alerts.service.alert_event: raised,
  escalated (some critical ones), acknowledged, resolved by a guard or by the rules. --open of
  them (default 50) stay open, chosen among the newest alerts (--old-open K puts K of them among
  the oldest instead, to see whether a restart still shows them);
- the whole demo gateway runs as a subprocess on that data dir (`python -m edge demo`: embedded
  broker, simulated sensor node, Modbus sensor and projector, the corridor camera's person model
  on a looping clip, recorder, alerts, console): its AlertService replays the stored alerts;
- after a settle time, one login (admin) and closed-loop workers with one shared
  httpx.AsyncClient hit one endpoint at a time for a fixed window per concurrency:
  GET /api/alerts (open list), GET /api/alerts/history?limit=50 (first page), a paged walk
  following next_before_seq to the oldest page and again (deep pages), GET /api/rooms.
  Per endpoint and concurrency: requests/s, p50/p95/p99/max ms, non-200 count, and the CPU% of
  the gateway process (/proc utime+stime) and of this client over the window.
Nothing here asserts timing: the figures go in a report.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import free_port  # noqa: E402
from bench.console_load import ENDPOINTS, idle_cpu, run_window  # noqa: E402
from bench.console_seed import seed  # noqa: E402

PASSWORD = "bench-console-pass-1"  # a throwaway demo user in a temp dir


def start_demo(data_dir: Path, port: int, duration: float, logs: Path) -> subprocess.Popen[bytes]:
    """`edge demo` on the seeded data dir; stdout (its JSON summary) and stderr go to files."""
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    env["EDGE_DEMO_PASSWORD"] = PASSWORD
    return subprocess.Popen(
        [sys.executable, "-m", "edge", "demo", "--data-dir", str(data_dir), "--http-port", str(port),
         "--duration", str(duration)],
        cwd=REPO, env=env, stdout=(logs / "demo.out").open("wb"), stderr=(logs / "demo.err").open("wb"))


async def wait_ready(client: httpx.AsyncClient, demo: subprocess.Popen[bytes], limit_s: float) -> float:
    """Poll /api/health until it answers; return seconds waited."""
    began = time.monotonic()
    while time.monotonic() - began < limit_s:
        if demo.poll() is not None:
            raise SystemExit(f"the demo gateway exited early with code {demo.returncode}")
        try:
            if (await client.get("/api/health")).status_code == 200:
                return round(time.monotonic() - began, 2)
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit(f"the demo gateway's console did not answer within {limit_s:.0f} s")


async def login(client: httpx.AsyncClient) -> None:
    """Log in as the demo's admin: the cookie stays in the client, the CSRF token is for changes only."""
    response = await client.post("/api/login", json={"username": "admin", "password": PASSWORD})
    response.raise_for_status()
    client.headers["X-CSRF-Token"] = response.json()["csrf_token"]


async def wait_open(client: httpx.AsyncClient, expected: int, limit_s: float) -> int:
    """Wait until the replayed open list holds at least `expected` alerts; return its length."""
    deadline = time.monotonic() + limit_s
    count = 0
    while time.monotonic() < deadline:
        count = len((await client.get("/api/alerts")).json())
        if count >= expected:
            break
        await asyncio.sleep(0.2)
    return count


async def measure(args: argparse.Namespace, port: int, demo: subprocess.Popen[bytes],
                  expected_open: int) -> dict[str, Any]:
    """Log in once, then each concurrency x endpoint window in turn."""
    top = max(args.concurrency)
    limits = httpx.Limits(max_connections=top, max_keepalive_connections=top)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30) as client:
        out: dict[str, Any] = {"console_ready_s": await wait_ready(client, demo, 120)}
        await login(client)
        out["open_alerts_served_at_start"] = await wait_open(client, expected_open, 30)
        await asyncio.sleep(args.settle)  # models loaded, camera analysing, devices reporting
        out["gateway_idle_cpu_percent"] = await idle_cpu(demo.pid, min(5.0, args.duration))
        results: dict[str, dict[str, Any]] = {}
        for concurrency in args.concurrency:
            for endpoint in args.endpoints:
                row = await run_window(client, endpoint, concurrency, args.duration, args.warmup, demo.pid)
                results.setdefault(endpoint, {})[f"c{concurrency}"] = row
                print(f"{endpoint:>20} c={concurrency:<2} {row['requests_per_s']:>8.1f} req/s  "
                      f"p50 {row['p50_ms']} p95 {row['p95_ms']} p99 {row['p99_ms']} ms  "
                      f"errors {row['errors']}  gateway CPU {row['gateway_cpu_percent']}%",
                      file=sys.stderr, flush=True)
        out["endpoints"] = results
        out["open_alerts_served_at_end"] = len((await client.get("/api/alerts")).json())
        first = (await client.get("/api/alerts/history", params={"limit": 1})).json()["alerts"]
        out["newest_stored_alert"] = first[0]["alert_id"] if first else None
    return out


def stop_demo(demo: subprocess.Popen[bytes], logs: Path) -> dict[str, Any] | None:
    """SIGTERM the demo (a clean stop) and return its JSON summary line, if it printed one."""
    if demo.poll() is None:
        demo.send_signal(signal.SIGTERM)
        try:
            demo.wait(timeout=30)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait()
    lines = (logs / "demo.out").read_text(errors="replace").strip().splitlines()
    try:
        summary: dict[str, Any] | None = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        return None
    return summary


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Seed, start the demo, measure, stop; the JSON object."""
    out: dict[str, Any] = {"cores": os.cpu_count(), "duration_s": args.duration,
                           "concurrency": args.concurrency, "page_limit": 50}
    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
        data_dir, logs = Path(tmp) / "data", Path(tmp)
        data_dir.mkdir()
        seeded = asyncio.run(seed(data_dir, args.alerts, args.open, time.time(), args.old_open))
        out.update(stored_alerts=seeded.alerts, open_alerts=seeded.open_alerts,
                   old_open_alerts=min(args.old_open, seeded.open_alerts),
                   stored_alert_events=seeded.events, seed_s=seeded.seconds)
        print(f"seeded {seeded.alerts} alerts ({seeded.events} transitions, {seeded.open_alerts} open) "
              f"in {seeded.seconds} s", file=sys.stderr, flush=True)
        windows = len(args.concurrency) * len(args.endpoints) * (args.duration + args.warmup)
        port = free_port()
        demo = start_demo(data_dir, port, windows + args.settle + 180, logs)
        try:
            out.update(asyncio.run(measure(args, port, demo, seeded.open_alerts - out["old_open_alerts"])))
        finally:
            out["demo_summary"] = stop_demo(demo, logs)
            err = (logs / "demo.err").read_text(errors="replace")
            out["demo_tracebacks"] = err.count("Traceback")
    return out


def main() -> int:
    """Parse arguments, run, print the JSON object."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 alerts and 2 s windows (smoke test)")
    parser.add_argument("--duration", type=float, help="seconds per window (default 10; --quick 2)")
    parser.add_argument("--concurrency", default="1,8", help="comma-separated worker counts (default 1,8)")
    parser.add_argument("--alerts", type=int, help="stored alerts to seed (default 10000; --quick 2000)")
    parser.add_argument("--open", type=int, default=50, help="seeded alerts left open (default 50)")
    parser.add_argument("--old-open", type=int, default=0,
                        help="of the open ones, how many are among the oldest alerts (default 0)")
    parser.add_argument("--endpoints", default=",".join(ENDPOINTS),
                        help=f"comma-separated subset of {','.join(ENDPOINTS)}")
    args = parser.parse_args()
    args.duration = args.duration or (2.0 if args.quick else 10.0)
    args.alerts = args.alerts or (2000 if args.quick else 10000)
    args.warmup = 0.5 if args.quick else 1.0
    args.settle = 2.0 if args.quick else 5.0
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    args.endpoints = [e.strip() for e in args.endpoints.split(",") if e.strip()]
    unknown = [e for e in args.endpoints if e not in ENDPOINTS]
    if unknown or not args.concurrency or min(args.concurrency) < 1 or not 0 <= args.open <= args.alerts:
        parser.error(f"bad --endpoints {unknown}, --concurrency or --open")
    print(json.dumps(run(args), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
