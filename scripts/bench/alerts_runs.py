"""The two measured paths: panic button on the serial line, and a person walking into a camera's zone."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from bench.alerts_page import ConsoleApi, ConsolePage
from bench.alerts_rig import Seen, Watcher
from bench.alerts_sources import PanicNode, SceneCamera

T = TypeVar("T")
ALERT_TIMEOUT_S = 10.0  # a path slower than this is counted as missed, not timed
CLEAR_TIMEOUT_S = 20.0


def percentile(values: list[float], share: float) -> float:
    """Linear-interpolated percentile (share 0..1) of a non-empty list."""
    ordered = sorted(values)
    rank = share * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: list[float]) -> dict[str, Any]:
    """p50/p95/p99/max in ms and n (null figures when nothing was measured)."""
    if not values:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    out: dict[str, Any] = {"n": len(values)}
    for name, share in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        out[name] = round(percentile(values, share), 1)
    return {**out, "max": round(max(values), 1)}


async def wait_for(probe: Callable[[], T | None], timeout_s: float) -> T | None:
    """Poll probe every 2 ms until it returns something; None after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = probe()
        if found is not None:
            return found
        await asyncio.sleep(0.002)
    return None


@dataclass
class Path:
    """Latencies of one triggering path, in ms from the trigger."""

    to_mqtt: list[float] = field(default_factory=list)
    to_page: list[float] = field(default_factory=list)  # card painted (next animation frame)
    to_page_dom: list[float] = field(default_factory=list)  # card put in the DOM
    upstream: list[float] = field(default_factory=list)  # the event the alert came from, on MQTT
    missed_mqtt: int = 0
    missed_page: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    def report(self, upstream_name: str) -> dict[str, Any]:
        """The JSON figures of this path."""
        return {"to_mqtt_ms": summary(self.to_mqtt), "to_page_ms": summary(self.to_page),
                "to_page_dom_ms": summary(self.to_page_dom), upstream_name: summary(self.upstream),
                "missed_mqtt": self.missed_mqtt, "missed_page": self.missed_page, **self.extra}


async def _on_page(page: ConsolePage | None, path: Path, alert_id: str, started: float) -> None:
    if page is None:
        return
    shown = await page.appeared(alert_id, ALERT_TIMEOUT_S)
    if shown is None:
        path.missed_page += 1
        return
    path.to_page_dom.append((shown[0] - started) * 1000)
    path.to_page.append((shown[1] - started) * 1000)


async def _cleared(watcher: Watcher, page: ConsolePage | None, mark: int, alert_id: str,
                   timeout_s: float) -> bool:
    """Wait for the alert's resolved transition on MQTT and its card leaving the page."""
    done = await wait_for(lambda: watcher.alert(mark, "resolved", alert_id=alert_id), timeout_s)
    if done is not None and page is not None:
        await page.gone(alert_id)
    return done is not None


async def panic_path(count: int, node: PanicNode, watcher: Watcher, page: ConsolePage | None,
                     api: ConsoleApi) -> Path:
    """Press panic `count` times; each press a new alert, resolved by hand through the API before the next."""
    path = Path()
    for _ in range(count):
        mark = len(watcher.messages)
        pressed = node.press()
        raised = await wait_for(partial(watcher.alert, mark, "raised", "panic"), ALERT_TIMEOUT_S)
        if raised is None:
            path.missed_mqtt += 1
            node.release()
            continue
        path.to_mqtt.append((raised.at - pressed) * 1000)
        stored = watcher.find(mark, lambda s: s.body.get("type") == "panic_button")
        if stored is not None:
            path.upstream.append((stored.at - pressed) * 1000)
        alert_id = raised.body["data"]["alert_id"]
        await _on_page(page, path, alert_id, pressed)
        node.release()
        await api.resolve(alert_id)
        await _cleared(watcher, page, mark, alert_id, CLEAR_TIMEOUT_S)
        await asyncio.sleep(0.1)  # presses are not back to back: a guard's finger, not a flood
    return path


def _entered(seen: Seen) -> bool:
    return seen.topic.endswith("/presence") and seen.body.get("present") is True


async def intrusion_path(count: int, camera: SceneCamera, watcher: Watcher, page: ConsolePage | None,
                         api: ConsoleApi, settle_s: float) -> Path:
    """A person walks into the empty room `count` times after hours; it empties until the alert clears."""
    path = Path(extra={"false_alerts": 0, "resolved_by_api": 0})
    camera.show("empty")
    await asyncio.sleep(settle_s)
    for _ in range(count):
        mark = len(watcher.messages)
        served = camera.served_at(camera.show("person"))
        raised = await wait_for(partial(watcher.alert, mark, "raised", "intrusion"), ALERT_TIMEOUT_S)
        if raised is not None and raised.at < served:
            path.extra["false_alerts"] += 1  # raised while the room was empty: not this person's alert
            raised = None
        if raised is None:
            path.missed_mqtt += 1
        else:
            path.to_mqtt.append((raised.at - served) * 1000)
            presence = watcher.find(mark, _entered)
            if presence is not None:
                path.upstream.append((presence.at - served) * 1000)
            await _on_page(page, path, raised.body["data"]["alert_id"], served)
        camera.show("empty")  # the person stays until the guard's page has the alert, then leaves
        if raised is not None:
            alert_id = raised.body["data"]["alert_id"]
            # The leave is reported up to 2 s late (a missed frame is not a departure); then clear_after_s 0.
            if not await _cleared(watcher, page, mark, alert_id, CLEAR_TIMEOUT_S):
                path.extra["resolved_by_api"] += 1
                await api.resolve(alert_id)
                await _cleared(watcher, page, mark, alert_id, CLEAR_TIMEOUT_S)
        await asyncio.sleep(settle_s)  # the old track is dropped before the next person comes in
    return path
