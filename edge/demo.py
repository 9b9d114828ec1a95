"""`edge demo`: the whole gateway in one process on the packaged demo config."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import secrets
import sys
import tempfile
import time
from importlib.resources import files
from pathlib import Path

from pydantic import ValidationError

from edge.app import Gateway
from edge.config import EdgeConfig
from edge.config_loader import parse_config_text
from edge.config_uplink import UplinkConfig
from edge.demo_devices import simulated_classroom
from edge.logs import ErrorCounter
from edge.store import DB_FILENAME, prepare_data_dir
from edge.store.database import Database
from edge.users import Role, check_password, hash_password

log = logging.getLogger(__name__)

SUMMARY_FIELDS = ("readings", "devices_online", "detections", "occupancy_updates", "alerts",
                  "events_uplinked", "uplink_backlog", "errors")


def demo_config(data_dir: Path) -> EdgeConfig:
    """Load the packaged demo config with its data dir replaced."""
    text = files("edge").joinpath("resources/demo.yaml").read_text(encoding="utf-8")
    config = parse_config_text(text, "edge/resources/demo.yaml")
    return config.model_copy(update={"data_dir": data_dir})


def process_uptime_s() -> float | None:
    """Return seconds since this process was started (Linux /proc), or None elsewhere."""
    try:
        with open("/proc/self/stat", encoding="ascii") as stat:
            # Field 22 (starttime, clock ticks since boot) follows the ")" of the command name.
            start_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", encoding="ascii") as uptime:
            since_boot = float(uptime.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return since_boot - start_ticks / os.sysconf("SC_CLK_TCK")


def summary(gateway: Gateway, errors: ErrorCounter, startup_s: float | None) -> dict[str, int]:
    """Return the demo's closing figures (0 for parts that do not exist yet)."""
    out = dict.fromkeys(SUMMARY_FIELDS, 0)
    out["readings"] = gateway.recorder.recorded if gateway.recorder else 0
    out["devices_online"] = gateway.devices_online_at_stop
    out["errors"] = errors.count
    out["alerts"] = gateway.alerts.raised if gateway.alerts else 0
    out["detections"] = sum(camera.detections for camera in gateway.cameras)
    out["occupancy_updates"] = sum(camera.occupancy_updates for camera in gateway.cameras)
    if gateway.uplink is not None:
        out["events_uplinked"] = gateway.uplink.metrics.delivered.get("event", 0)
        out["uplink_backlog"] = gateway.uplink.metrics.backlog
    # From process start (interpreter and imports included) to READY.
    out["startup_ms"] = round((startup_s or gateway.ready_at or 0) * 1000)
    # ru_maxrss is in KiB on Linux.
    out["peak_rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return out


def print_where_to_look(gateway: Gateway) -> None:
    """Tell the person at the terminal what is running and how to look at it."""
    port = gateway.broker.port if gateway.broker else None
    prefix = gateway.config.local_topic_prefix()
    print(f"Demo gateway {gateway.config.gateway_id} is running (Ctrl-C stops it).", flush=True)
    print(f"  data dir:    {gateway.config.data_dir}", flush=True)
    if port:
        print(f"  local MQTT:  mqtt://127.0.0.1:{port}", flush=True)
        print(f"  watch it:    mosquitto_sub -h 127.0.0.1 -p {port} -t '{prefix}/#' -v", flush=True)
    if gateway.console is not None and gateway.console.bound_port:
        print(f"  console:     {gateway.console.url} (log in as admin)", flush=True)


def ensure_demo_admin(data_dir: Path, password: str | None) -> str | None:
    """Create the console user 'admin' unless it exists; return the password when it was made up."""
    prepare_data_dir(data_dir)
    db = Database(data_dir / DB_FILENAME)
    try:
        if db.get_user("admin") is not None:
            return None
        made_up = None
        if not password:
            password = made_up = secrets.token_urlsafe(12)
        check_password(password, "admin")
        db.add_user("admin", Role.ADMIN, hash_password(password), time.time(), "demo")
        return made_up
    finally:
        db.close()


def run_demo(duration: float | None, data_dir: Path | None, errors: ErrorCounter,
             http_port: int = 8080, admin_password: str | None = None, uplink: str | None = None) -> int:
    """Run the demo gateway; with a duration, print the JSON summary as the last line."""
    if uplink:
        try:
            UplinkConfig.model_validate({"url": uplink})
        except ValidationError as err:
            reason = str(err.errors(include_url=False)[0]["msg"]).removeprefix("Value error, ")
            print(f"edge demo: --uplink {uplink}: {reason}", file=sys.stderr)
            return 2
    if data_dir is None:
        data_dir = Path(tempfile.mkdtemp(prefix="edge-demo-"))
    made_up = ensure_demo_admin(data_dir, admin_password or os.environ.get("EDGE_DEMO_PASSWORD"))
    if made_up:
        print(f"Console user 'admin' created with password: {made_up}", flush=True)
    startup: list[float | None] = []
    gateways: list[Gateway] = []

    def on_ready(ready: Gateway) -> None:
        startup.append(process_uptime_s())
        if duration is None:
            print_where_to_look(ready)

    async def demo() -> int:
        base = demo_config(data_dir)
        base = base.model_copy(update={"console": base.console.model_copy(update={"port": http_port})})
        if uplink:
            base = EdgeConfig.model_validate({**base.model_dump(), "uplink": {
                "url": uplink, "keepalive_s": 10, "reconnect_max_s": 5.0, "telemetry_interval_s": 5.0}})
        async with simulated_classroom(base) as config:
            gateways.append(Gateway(config))
            return await gateways[0].run(stop_after=duration, on_ready=on_ready)

    code = asyncio.run(demo())
    gateway = gateways[0]
    if duration is not None:
        startup_s = startup[0] if startup else None
        sys.stdout.write(json.dumps(summary(gateway, errors, startup_s)) + "\n")
        sys.stdout.flush()
    return code
