"""Prometheus metrics built from the health report at scrape time (no background thread)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Metric, ProcessCollector, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
)
from prometheus_client.registry import Collector

# One SSE subscriber per open browser tab, each with a random name: summed into one series so
# the number of series does not grow with every page load.
_STREAM_PREFIX = "console-stream-"
STORE_TABLES = ("readings", "events", "audit")
DISK_LEVELS = ("ok", "low", "critical")


def _gauge(name: str, doc: str, labels: list[str], rows: Iterable[tuple[list[str], float]]) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for values, value in rows:
        family.add_metric(values, value)
    return family


def _counter(name: str, doc: str, labels: list[str], rows: Iterable[tuple[list[str], float]]) -> Metric:
    family = CounterMetricFamily(name, doc, labels=labels)
    for values, value in rows:
        family.add_metric(values, value)
    return family


def _flag(value: object) -> float:
    return 1.0 if value else 0.0


def _bus_rows(report: dict[str, Any]) -> tuple[dict[str, float], dict[str, float]]:
    depth: dict[str, float] = defaultdict(float)
    dropped: dict[str, float] = defaultdict(float)
    for name, sub in report["bus"]["subscribers"].items():
        key = "console-stream" if name.startswith(_STREAM_PREFIX) else name
        depth[key] += sub["depth"]
        dropped[key] += sub["dropped"]
    return depth, dropped


def core_families(report: dict[str, Any]) -> Iterator[Metric]:
    """Gateway, services, bus, cameras and devices."""
    yield _gauge("edge_up", "1 when the gateway is ready and healthy; 0 while starting or degraded "
                 "(/api/status lists the problems).", [], [([], _flag(report["status"] == "ok"))])
    info = InfoMetricFamily("edge", "Gateway software version and identity.")
    info.add_metric([], {"version": report["version"], "site_id": report["site_id"],
                         "gateway_id": report["gateway_id"]})
    yield info
    services = report["services"]
    yield _gauge("edge_service_up", "1 when the supervised service is running (or finished its work).",
                 ["service"], (([s["name"]], _flag(s["state"] in ("running", "finished"))) for s in services))
    yield _counter("edge_service_restarts", "Restarts of the service after a crash, since the gateway "
                   "started.", ["service"], (([s["name"]], s["restarts"]) for s in services))
    depth, dropped = _bus_rows(report)
    yield _gauge("edge_bus_queue_depth", "Events waiting in the subscriber's in-process bus queue.",
                 ["subscriber"], (([k], v) for k, v in depth.items()))
    yield _counter("edge_bus_dropped", "Events the subscriber's full bus queue gave up.",
                   ["subscriber"], (([k], v) for k, v in dropped.items()))
    cameras = report["cameras"]
    yield _gauge("edge_camera_online", "1 while the camera delivers frames.", ["camera"],
                 (([cam], _flag(c["online"])) for cam, c in cameras.items()))
    yield _gauge("edge_camera_fps", "Frames per second: kind=input read from the stream, kind=analysed "
                 "run through the person model.", ["camera", "kind"],
                 [row for cam, c in cameras.items()
                  for row in (([cam, "input"], c["fps_in"]), ([cam, "analysed"], c["fps_analysed"]))
                  if row[1] is not None])
    latency = Metric("edge_inference_latency_seconds",
                     "Person model run time per frame over the last 200 runs (quantile 0.5 and 0.99).",
                     "summary")
    for cam, c in cameras.items():
        if c["inference_ms"] is not None:
            for quantile, key in (("0.5", "p50"), ("0.99", "p99")):
                latency.add_sample("edge_inference_latency_seconds", {"camera": cam, "quantile": quantile},
                                   round(c["inference_ms"][key] / 1000, 6))
    yield latency
    yield _gauge("edge_device_online", "1 while the device reports; 0 offline; absent before its first "
                 "status.", ["device"],
                 (([dev], _flag(online)) for dev, online in report["devices"].items() if online is not None))


def link_families(report: dict[str, Any]) -> Iterator[Metric]:
    """The MQTT links and the uplink's outbox."""
    uplink = report["uplink"]
    links = [(["local"], _flag(report["local_mqtt"]["connected"]))]
    if uplink is not None:
        links.append((["uplink"], _flag(uplink["connected"])))
    yield _gauge("edge_mqtt_connected", "1 while the MQTT session is up: link=local (classroom broker) "
                 "or link=uplink (campus platform, when configured).", ["link"], links)
    if uplink is None:
        return
    classes = uplink["outbox"].get("classes", {})
    yield _gauge("edge_uplink_backlog_messages", "Messages in the outbox waiting for the campus platform.",
                 ["class"], (([cls], c["count"]) for cls, c in classes.items()))
    yield _gauge("edge_uplink_backlog_bytes", "Bytes in the outbox waiting for the campus platform.",
                 ["class"], (([cls], c["bytes"]) for cls, c in classes.items()))
    yield _gauge("edge_uplink_oldest_age_seconds", "Age of the oldest undelivered message; 0 when none.",
                 ["class"], (([cls], c["oldest_age_s"] or 0.0) for cls, c in classes.items()))
    yield _counter("edge_uplink_delivered", "Messages the campus broker acknowledged since the gateway "
                   "started.", [], [([], sum(uplink["delivered"].values()))])
    drops = [([cls, reason], n) for cls, by_reason in uplink["outbox"].get("dropped", {}).items()
             for reason, n in by_reason.items()]
    drops += [([cls, "disk_low"], n) for cls, n in uplink["dropped_disk"].items()]
    yield _counter("edge_uplink_dropped", "Messages given up without delivery: reason=full (class cap), "
                   "expired (TTL) or disk_low (not queued while disk space was low).", ["class", "reason"],
                   drops)
    if uplink["last_puback_at"] is not None:
        yield _gauge("edge_uplink_last_puback_timestamp_seconds", "Unix time of the last acknowledgement "
                     "from the campus broker.", [], [([], uplink["last_puback_at"])])


def store_families(report: dict[str, Any]) -> Iterator[Metric]:
    """Database rows and size, and free disk space."""
    store = report["store"]
    if store is not None:
        rows = [([table], store[table]) for table in STORE_TABLES]
        rows.append((["outbox"], store["outbox_pending"]))
        yield _gauge("edge_store_rows", "Rows in the gateway database's table.", ["table"], rows)
        if store["db_bytes"] is not None:
            yield _gauge("edge_store_size_bytes", "Size of the database file and its write-ahead log.",
                         [], [([], store["db_bytes"])])
    if report["disk"]["free_bytes"] is not None:
        yield _gauge("edge_disk_free_bytes", "Free bytes on the file system holding data_dir.", [],
                     [([], report["disk"]["free_bytes"])])
    guard = report["disk"].get("guard")
    if guard is not None:
        yield _gauge("edge_disk_guard_level", "Disk guard: 0 ok, 1 low (no new snapshots), 2 critical "
                     "(readings dropped too); safety events are always kept.", [],
                     [([], float(DISK_LEVELS.index(guard["level"])))])
        yield _counter("edge_disk_guard_dropped", "Items refused while disk space was low: what=snapshots "
                       "or readings.", ["what"], (([what], n) for what, n in guard["dropped"].items()))
    retention = report.get("retention") or {}
    if retention:
        yield _gauge("edge_retention_last_run_timestamp_seconds", "Unix time of the last retention run.",
                     [], [([], retention["last_run_at"])])
        yield _gauge("edge_retention_deleted", "Rows (snapshots: files) the last retention run deleted.",
                     ["what"], (([what], n) for what, n in retention["deleted"].items()))


class HealthCollector(Collector):
    """Metric families from one health report (taken by the caller just before the scrape)."""

    def __init__(self, report: dict[str, Any]) -> None:
        self.report = report

    def collect(self) -> Iterator[Metric]:
        """Every edge_* family."""
        yield from core_families(self.report)
        yield from link_families(self.report)
        yield from store_families(self.report)


def registry_for(report: dict[str, Any]) -> CollectorRegistry:
    """A registry with the report's metrics and this process's RSS, CPU and open files."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HealthCollector(report))
    ProcessCollector(registry=registry)
    return registry


def render(report: dict[str, Any]) -> bytes:
    """The Prometheus text exposition of a health report."""
    return generate_latest(registry_for(report))
