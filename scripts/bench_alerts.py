#!/usr/bin/env python3
"""Alert latency benchmark: panic button and a person in a zone, to the local MQTT and to the console page.

Run with the project's venv: `.venv/bin/python scripts/bench_alerts.py [--panic N] [--intrusion N]`
(`--quick`: a few of each, for the smoke test; `--no-browser`: MQTT only). Prints one JSON object
(a short text report goes to stderr). Everything runs side by side in one run on this machine:
- a Mosquitto on a free port (the gateway's embedded broker when Mosquitto is not installed);
- the gateway (edge.app.Gateway, models, store, alert service and console) in a child process
  of this script, with one room whose timetable has no periods (any person is an intrusion;
  intrusion grace_s 0, clear_after_s 0), a sensor node on a pseudo-terminal and one camera;
- panic: a simulated node (firmware_bridge's SimulatedNode) presses the panic button; timed
  from just before the EVENT frame's bytes are written to the pty to the alert's `raised`
  transition arriving on `<prefix>/event` at a subscriber in this process, and to the alert's
  card being put in `#alerts` (and painted: the next animation frame) in Debian's chromium
  driven by Playwright, logged in as a security guard and following the live list over SSE.
  Each alert is resolved through the console API before the next press, so every press is a
  new alert. The stored panic_button event's own arrival on MQTT is reported alongside;
- intrusion: the camera is an MJPEG-over-HTTP server in this process showing an empty room;
  it then serves the astronaut (tests/fixtures/images) until the alert is raised, then the
  empty room again until the alert resolves by itself. Timed from just before the first
  person frame is written to the socket; the person's zone presence message on MQTT (the
  vision half of the path: decode, detection, tracker confirmation) is reported alongside.
Wall-clock times are compared across processes (chromium's Date.now(), ms resolution). The
figures depend on the camera's detect_fps (`--detect-fps`, default 10; the config default is 2):
a person is confirmed after two detections. Nothing here asserts timing.
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

from bench.alerts_rig import (  # noqa: E402
    NODE,
    READY_PREFIX,
    GatewayProcess,
    Watcher,
    start_mosquitto,
    write_config,
)
from bench.common import find_mosquitto, free_port  # noqa: E402

TARGETS = {"mqtt_p99_ms": 200.0, "page_p99_ms": 1000.0}


async def serve(config_path: Path) -> int:
    """Child mode: run the Gateway; print the console port once it is ready and connected."""
    from edge.app import Gateway
    from edge.config_loader import load_config

    gateway = Gateway(load_config(config_path))
    ready = asyncio.Event()
    task = asyncio.create_task(gateway.run(on_ready=lambda _: ready.set()))
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait([task, waiter], timeout=90, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        return int(task.result())
    # Ready is not connected, and the console learns its port just before it says ready.
    while (gateway.link is None or gateway.link.state != "connected"  # noqa: ASYNC110 - no event to wait on
           or gateway.console is None or not gateway.console.bound_port):
        await asyncio.sleep(0.02)
    print(READY_PREFIX + json.dumps({"console_port": gateway.console.bound_port}), flush=True)
    return int(await task)


async def measure(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    """Start everything, run both paths, stop everything; return the figures."""
    from bench.alerts_page import ConsoleApi, ConsolePage, chromium_available
    from bench.alerts_runs import Path as Figures
    from bench.alerts_runs import intrusion_path, panic_path
    from bench.alerts_sources import PanicNode, SceneCamera

    broker = None
    if find_mosquitto() is not None:
        broker, port = start_mosquitto(directory)
        url, embedded_port, broker_name = f"mqtt://127.0.0.1:{port}", 0, "mosquitto"
    else:
        port = free_port()
        url, embedded_port, broker_name = "embedded", port, "embedded"
    node = PanicNode(NODE)
    camera = SceneCamera(args.camera_fps) if args.intrusion else None
    config = write_config(directory, url, embedded_port, node.path, camera.url if camera else None,
                          args.detect_fps)
    node.start()
    gateway = GatewayProcess(SCRIPT, config, directory / "gateway.log")
    watcher = Watcher(port)
    page: ConsolePage | None = None
    api: ConsoleApi | None = None
    browser = not args.no_browser and chromium_available()
    try:
        gateway.wait_ready()
        watcher.start()
        api = ConsoleApi(gateway.console_port)
        await api.login()
        if browser:
            page = ConsolePage(gateway.console_port)
            await page.open()
        await asyncio.sleep(1.0)  # the node's HELLO answered, the camera's stream open
        say(f"panic x{args.panic} ...")
        panic = await panic_path(args.panic, node, watcher, page, api) if args.panic else Figures()
        intrusion = Figures()
        if camera is not None:
            say(f"intrusion x{args.intrusion} ...")
            intrusion = await intrusion_path(args.intrusion, camera, watcher, page, api, args.settle)
    finally:
        if page is not None:
            await page.close()
        if api is not None:
            await api.close()
        gateway.stop()
        watcher.stop()
        node.stop()
        if camera is not None:
            camera.close()
        if broker is not None:
            broker.terminate()
            broker.wait()
    return {"panic": panic.report("event_on_mqtt_ms"), "intrusion": intrusion.report("presence_on_mqtt_ms"),
            "browser": browser, "broker": broker_name}


def verdicts(result: dict[str, Any]) -> dict[str, bool | None]:
    """p99 against the targets per path; None where nothing was measured (no browser, path skipped)."""
    out: dict[str, bool | None] = {}
    for name in ("panic", "intrusion"):
        for where, target in (("mqtt", TARGETS["mqtt_p99_ms"]), ("page", TARGETS["page_p99_ms"])):
            figures = result[name][f"to_{where}_ms"]
            missed = result[name][f"missed_{where}"]
            p99 = figures["p99"]
            out[f"{name}_{where}"] = None if p99 is None and not missed else bool(
                p99 is not None and p99 <= target and not missed)
    return out


def say(text: str) -> None:
    """Progress and the text report go to stderr; stdout holds only the JSON."""
    print(text, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments; run the bench, or the gateway when called as the child."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--panic", type=int, default=50, help="panic presses (default 50)")
    parser.add_argument("--intrusion", type=int, default=20, help="people entering the zone (default 20)")
    parser.add_argument("--quick", action="store_true", help="3 presses and 2 people (smoke test)")
    parser.add_argument("--no-browser", action="store_true", help="skip the console page half")
    parser.add_argument("--detect-fps", type=float, default=10.0, help="the camera's detect_fps")
    parser.add_argument("--camera-fps", type=float, default=15.0, help="frames/s the camera serves")
    parser.add_argument("--settle", type=float, default=1.5, help="s of empty room between people")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return asyncio.run(serve(args.serve))
    if args.quick:
        args.panic, args.intrusion = min(args.panic, 3), min(args.intrusion, 2)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-alerts-") as tmp:
        result = asyncio.run(measure(args, Path(tmp)))
    result.update(
        targets=TARGETS, **{"pass": verdicts(result)},
        config={"panic_presses": args.panic, "intrusion_people": args.intrusion,
                "detect_fps": args.detect_fps, "camera_fps": args.camera_fps, "settle_s": args.settle},
        machine={"cores": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine()},
        wall_s=round(time.monotonic() - started, 1))
    for name in ("panic", "intrusion"):
        mqtt, page = result[name]["to_mqtt_ms"], result[name]["to_page_ms"]
        say(f"{name}: MQTT p50 {mqtt['p50']} p99 {mqtt['p99']} ms (n={mqtt['n']}); "
            f"page p50 {page['p50']} p99 {page['p99']} ms (n={page['n']})")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
