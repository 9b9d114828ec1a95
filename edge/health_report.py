"""The gateway's health as one JSON-ready dict: services, bus, cameras, devices, links, store, disk."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from edge import __version__
from edge.bus import Bus
from edge.config import EdgeConfig
from edge.disk_guard import DiskGuard
from edge.health import HealthMonitor
from edge.mqtt import MqttLink
from edge.retention import RetentionService
from edge.sources.cameras import CameraService
from edge.store import Store
from edge.supervisor import Supervisor
from edge.uplink.build import Uplink

# Service states that are not a problem: "finished" is a service with nothing (more) to do.
FINE_STATES = frozenset({"running", "finished"})
_STARTED = time.monotonic()  # fallback for uptime where /proc is missing: this module loads at start


class GatewayView(Protocol):
    """What the health report reads of a running gateway (edge.app.Gateway has all of it)."""

    @property
    def config(self) -> EdgeConfig: ...
    @property
    def bus(self) -> Bus: ...
    @property
    def supervisor(self) -> Supervisor | None: ...
    @property
    def store(self) -> Store | None: ...
    @property
    def link(self) -> MqttLink | None: ...
    @property
    def health(self) -> HealthMonitor | None: ...
    @property
    def cameras(self) -> Sequence[CameraService]: ...
    @property
    def uplink(self) -> Uplink | None: ...
    @property
    def ready_at(self) -> float | None: ...
    @property
    def disk_guard(self) -> DiskGuard | None: ...
    @property
    def retention(self) -> RetentionService | None: ...


def process_uptime_s() -> float:
    """Seconds since this process started (Linux: from /proc, so a reload does not reset it)."""
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        with open("/proc/self/stat", "rb") as stat:
            # Field 22, counted after the ")" that ends the command name (which may hold spaces).
            start_ticks = int(stat.read().rsplit(b")", 1)[1].split()[19])
        with open("/proc/uptime", "rb") as uptime:
            since_boot = float(uptime.read().split()[0])
        return max(0.0, since_boot - start_ticks / ticks)
    except (OSError, ValueError, IndexError):
        return time.monotonic() - _STARTED


def _quantile(ordered: list[float], q: float) -> float:
    """Nearest-rank quantile of a sorted, non-empty list."""
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def camera_report(service: CameraService) -> dict[str, Any]:
    """One camera: online, frames per second read and analysed, model latency, what is wrong."""
    times = sorted(service.inference_times)
    latency = None if not times else {
        "p50": round(_quantile(times, 0.5) * 1000, 1), "p99": round(_quantile(times, 0.99) * 1000, 1),
        "samples": len(times)}
    reader = service.reader
    if reader is None:
        return {"online": False, "fps_in": None, "fps_analysed": None, "inference_ms": latency,
                "problem": "not started"}
    stats = service.stats(reader)
    problem = None if stats.online else (stats.last_error or "no frames")
    return {"online": stats.online, "fps_in": stats.input_fps, "fps_analysed": stats.detect_fps,
            "inference_ms": latency, "problem": problem}


def services_report(supervisor: Supervisor | None, window_s: float) -> tuple[list[dict[str, Any]], list[str]]:
    """Every supervised service, and the problems: not running, or crashed within window_s."""
    if supervisor is None:
        return [], []
    problems = []
    now = time.monotonic()  # the gateway's supervisor times crashes on the system clock
    for state in supervisor.states.values():
        if state.state not in FINE_STATES:
            problems.append(f"service {state.name} is {state.state}")
        elif state.crash_times and now - state.crash_times[-1] <= window_s:
            problems.append(f"service {state.name} crashed {now - state.crash_times[-1]:.0f}s ago")
    return supervisor.status(), problems


def _files_and_disk(db_path: Path | None, data_dir: Path) -> tuple[int | None, int | None]:
    """The database's size on disk (with its WAL) and the free bytes of data_dir's file system."""
    size = None
    if db_path is not None:
        size = sum(p.stat().st_size for p in (db_path, Path(f"{db_path}-wal")) if p.exists())
    try:
        # Before the first start data_dir may not exist yet: its file system is its nearest parent's.
        free = shutil.disk_usage(next(p for p in (data_dir, *data_dir.parents) if p.exists())).free
    except (OSError, StopIteration):
        free = None
    return size, free


async def health_report(gateway: GatewayView) -> dict[str, Any]:
    """The gateway's health now; status is ok, degraded (see problems) or starting."""
    config = gateway.config
    services, problems = services_report(gateway.supervisor, config.supervisor.window_s)
    cameras = {c.camera.id: camera_report(c) for c in gateway.cameras}
    problems += [f"camera {cam_id} is offline: {c['problem']}" for cam_id, c in cameras.items()
                 if not c["online"]]
    connected = gateway.link is not None and gateway.link.connected
    if not connected:
        problems.append("local MQTT broker is not connected")
    uplink = gateway.uplink.metrics.as_dict() if gateway.uplink is not None else None
    if uplink is not None and not uplink["connected"]:
        problems.append("uplink to the campus platform is not connected")
    online = gateway.health.online if gateway.health is not None else {}
    store = gateway.store
    db_size, free = await asyncio.to_thread(_files_and_disk, store.path if store else None, config.data_dir)
    store_report = None if store is None else {**await store.stats(exact=False), "db_bytes": db_size}
    bus = gateway.bus.stats()
    guard = gateway.disk_guard.report() if gateway.disk_guard is not None else None
    if guard is not None and guard["level"] != "ok":
        problems.append(f"disk space is {guard['level']}: under {guard['min_free_mb']} MB free for data")
    status = "starting" if gateway.ready_at is None else "degraded" if problems else "ok"
    return {
        "status": status, "problems": problems, "version": __version__,
        "site_id": config.site_id, "gateway_id": config.gateway_id,
        "uptime_s": round(process_uptime_s(), 1), "ready_after_s": gateway.ready_at,
        "services": services,
        "bus": {"published": bus["published"], "unrouted": bus["unrouted"],
                "subscribers": {s["name"]: {"depth": s["depth"], "max_depth": s["max_depth"],
                                            "maxsize": s["maxsize"], "dropped": s["dropped"],
                                            "delivered": s["delivered"]} for s in bus["subscribers"]}},
        "cameras": cameras,
        "devices": {dev.id: online.get(dev.id) for dev in config.devices},
        "local_mqtt": {"connected": connected},
        "uplink": uplink,
        "store": store_report,
        "disk": {"data_dir": str(config.data_dir), "free_bytes": free, "guard": guard},
        "retention": gateway.retention.report() if gateway.retention is not None else None,
    }
