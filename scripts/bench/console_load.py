"""Closed-loop HTTP load on the console API: N workers, one shared logged-in client, fixed windows."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.common import cpu_seconds

PAGE = 50


def percentile(sorted_ms: list[float], q: float) -> float | None:
    """The q-quantile (nearest rank) of an ascending list."""
    if not sorted_ms:
        return None
    return round(sorted_ms[min(len(sorted_ms) - 1, max(0, round(q * len(sorted_ms)) - 1))], 2)


@dataclass
class Tally:
    """What one endpoint's workers saw in one window."""

    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    pages_walked: int = 0
    walks_completed: int = 0
    deepest_page: int = 0


class Walker:
    """One worker's position in the paged history walk (restarts at the top when it reaches the end)."""

    def __init__(self) -> None:
        self.cursor: int | None = None
        self.depth = 0


Request = Callable[[httpx.AsyncClient, Tally, Walker], Awaitable[httpx.Response]]


async def _open_list(client: httpx.AsyncClient, tally: Tally, walker: Walker) -> httpx.Response:
    return await client.get("/api/alerts")


async def _first_page(client: httpx.AsyncClient, tally: Tally, walker: Walker) -> httpx.Response:
    return await client.get("/api/alerts/history", params={"limit": PAGE})


async def _rooms(client: httpx.AsyncClient, tally: Tally, walker: Walker) -> httpx.Response:
    return await client.get("/api/rooms")


async def _deep_walk(client: httpx.AsyncClient, tally: Tally, walker: Walker) -> httpx.Response:
    params: dict[str, int] = {"limit": PAGE}
    if walker.cursor is not None:
        params["before_seq"] = walker.cursor
    response = await client.get("/api/alerts/history", params=params)
    if response.status_code == 200:
        walker.depth += 1
        tally.pages_walked += 1
        tally.deepest_page = max(tally.deepest_page, walker.depth)
        walker.cursor = response.json()["next_before_seq"]
        if walker.cursor is None:  # the oldest page: start again from the newest
            tally.walks_completed += 1
            walker.depth = 0
    return response


ENDPOINTS: dict[str, Request] = {
    "alerts_open": _open_list,
    "history_first_page": _first_page,
    "history_walk": _deep_walk,
    "rooms": _rooms,
}


async def _worker(client: httpx.AsyncClient, request: Request, tally: Tally, walker: Walker,
                  warm_until: float, until: float) -> None:
    while (now := time.perf_counter()) < until:
        started = now
        try:
            response = await request(client, tally, walker)
            status = response.status_code
        except httpx.HTTPError:
            status = 0  # refused, reset or timed out: an error too
        if started < warm_until:
            continue
        tally.latencies_ms.append((time.perf_counter() - started) * 1000)
        tally.statuses[status] = tally.statuses.get(status, 0) + 1
        if status != 200:
            tally.errors += 1


async def run_window(client: httpx.AsyncClient, endpoint: str, concurrency: int, seconds: float,
                     warmup_s: float, pid: int) -> dict[str, Any]:
    """Hammer one endpoint with `concurrency` closed-loop workers; figures of the measured part."""
    tally = Tally()
    walkers = [Walker() for _ in range(concurrency)]
    start = time.perf_counter()
    warm_until, until = start + warmup_s, start + warmup_s + seconds
    marks: dict[str, float] = {}
    # CPU is sampled when the warm-up ends: the window's requests, not the warm-up's.
    sample = asyncio.get_running_loop().call_at(
        asyncio.get_running_loop().time() + warmup_s, lambda: marks.update(
            gw=cpu_seconds(pid), me=cpu_seconds(os.getpid()), at=time.perf_counter()))
    try:
        await asyncio.gather(*(_worker(client, ENDPOINTS[endpoint], tally, w, warm_until, until)
                               for w in walkers))
    finally:
        sample.cancel()
    # Requests started before `until` finish a bit after it: count time up to the last answer.
    elapsed = time.perf_counter() - marks.get("at", warm_until)
    gw_cpu = cpu_seconds(pid) - marks.get("gw", 0.0)
    my_cpu = cpu_seconds(os.getpid()) - marks.get("me", 0.0)
    done = sorted(tally.latencies_ms)
    out: dict[str, Any] = {
        "requests": len(done), "requests_per_s": round(len(done) / elapsed, 1),
        "p50_ms": percentile(done, 0.50), "p95_ms": percentile(done, 0.95),
        "p99_ms": percentile(done, 0.99), "max_ms": round(done[-1], 2) if done else None,
        "errors": tally.errors, "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "gateway_cpu_percent": round(100 * gw_cpu / elapsed, 1),
        "client_cpu_percent": round(100 * my_cpu / elapsed, 1),
    }
    if endpoint == "history_walk":
        out.update(pages_walked=tally.pages_walked, walks_completed=tally.walks_completed,
                   deepest_page=tally.deepest_page)
    return out


async def idle_cpu(pid: int, seconds: float) -> float:
    """The gateway's CPU% with no console requests (the pipeline alone)."""
    before, at = cpu_seconds(pid), time.perf_counter()
    await asyncio.sleep(seconds)
    return round(100 * (cpu_seconds(pid) - before) / (time.perf_counter() - at), 1)
