"""CameraReader against real sources: the fixture clip, a real MJPEG server that fails, broken files."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.vision.camera_reader import CameraHealth, CameraReader
from edge.vision.camera_url import parse_camera_url, redact_url
from tests.conftest import REPO, free_port, wait_for_port
from tests.vision.mjpeg_server import MjpegServer

CLIP = REPO / "tests" / "fixtures" / "vtest-cut.mp4"
CLIP_FRAMES = 150
# Short timeouts keep the failure tests quick; the watchdog adds its grace on top.
FAST = {"open_timeout_s": 1.5, "read_timeout_s": 1.0, "backoff_initial_s": 0.2, "backoff_max_s": 0.5}


def wait_until(
    reader: CameraReader, predicate: Callable[[CameraHealth], bool], timeout: float, what: str
) -> CameraHealth:
    """Poll reader.health() until predicate holds; fail with the last health if it never does."""
    deadline = time.monotonic() + timeout
    while True:
        health = reader.health()
        if predicate(health):
            return health
        if time.monotonic() > deadline:
            pytest.fail(f"not {what} within {timeout}s: {health}")
        time.sleep(0.05)


@pytest.fixture
def make_reader() -> Iterator[Callable[..., CameraReader]]:
    """Started readers, stopped again after the test whatever happens."""
    readers: list[CameraReader] = []

    def make(camera_id: str, url: str, **options: object) -> CameraReader:
        reader = CameraReader(camera_id, url, **options)  # type: ignore[arg-type]
        readers.append(reader)
        reader.start()
        return reader

    yield make
    for reader in readers:
        reader.stop(timeout=3.0)


def reader_threads(camera_id: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(f"camera-{camera_id}-")]


# ---------------------------------------------------------------- files


def test_file_camera_runs_at_the_clips_frame_rate(make_reader: Callable[..., CameraReader]) -> None:
    reader = make_reader("clip", str(CLIP))
    first = reader.wait_newer(0, timeout=5.0)
    assert first is not None and first.index == 1
    assert first.image.shape == (576, 768, 3) and first.image.dtype == np.uint8
    assert not first.image.flags.writeable  # shared between consumers
    health = wait_until(reader, lambda h: h.frames >= 25, 8.0, "25 frames")
    assert health.online and health.last_error is None
    assert (health.width, health.height) == (768, 576)
    assert 5.0 <= health.input_fps <= 15.0, health
    assert health.last_frame_age_s is not None and health.last_frame_age_s < 1.0
    # Frames nobody took were overwritten: only the newest is kept.
    assert health.dropped >= 20


def test_file_loops_forever_and_wait_newer_only_returns_newer(
    make_reader: Callable[..., CameraReader],
) -> None:
    reader = make_reader("loop", f"file:{CLIP}", file_speed=0)
    seen = 0
    deadline = time.monotonic() + 20
    while seen <= CLIP_FRAMES + 20:
        assert time.monotonic() < deadline, reader.health()
        frame = reader.wait_newer(seen, timeout=5.0)
        assert frame is not None, reader.health()
        assert frame.index > seen
        seen = frame.index
    health = reader.health()
    assert health.reconnects == 0 and health.last_error is None  # a loop is not a reconnect
    assert health.frames > CLIP_FRAMES


def test_file_without_looping_ends_then_reconnects(make_reader: Callable[..., CameraReader]) -> None:
    reader = make_reader(
        "once", str(CLIP), loop_file=False, file_speed=0, backoff_initial_s=0.2, backoff_max_s=0.4
    )
    health = wait_until(reader, lambda h: h.reconnects >= 1 and h.frames > CLIP_FRAMES, 20.0, "replayed")
    assert health.last_error == "end of file"
    frame = reader.latest()
    assert frame is not None and frame.index == health.frames  # indexes continue across reconnects


def test_corrupt_and_truncated_files_fail_clearly_without_spinning(
    make_reader: Callable[..., CameraReader], tmp_path: Path
) -> None:
    corrupt = tmp_path / "random.mp4"
    corrupt.write_bytes(np.random.default_rng(7).integers(0, 256, 300_000, dtype=np.uint8).tobytes())
    clip_bytes = CLIP.read_bytes()
    truncated = tmp_path / "truncated.mp4"  # its index (moov) is at the end, so nothing decodes
    truncated.write_bytes(clip_bytes[: int(len(clip_bytes) * 0.4)])
    options = {"backoff_initial_s": 0.4, "backoff_max_s": 0.8}
    readers = [
        make_reader("corrupt", str(corrupt), **options),
        make_reader("trunc", str(truncated), **options),
    ]
    missing = make_reader("missing", str(tmp_path / "absent.mp4"), **options)

    started = time.monotonic()
    for reader in readers:
        health = wait_until(reader, lambda h: h.reconnects >= 2, 10.0, "retried twice")
        assert not health.online and health.frames == 0
        assert health.last_error is not None and "cannot decode" in health.last_error, health
    health = wait_until(missing, lambda h: h.last_error is not None, 5.0, "failed")
    assert health.last_error is not None and health.last_error.startswith("file not found")

    time.sleep(max(0.0, 2.5 - (time.monotonic() - started)))
    elapsed = time.monotonic() - started
    # Each retry waits at least backoff_initial_s / 2 (full jitter), so no busy loop:
    bound = elapsed / (options["backoff_initial_s"] / 2) + 1
    for reader in [*readers, missing]:
        assert reader.health().reconnects <= bound, reader.health()


def test_file_truncated_mid_stream_delivers_what_it_has_then_loops(
    make_reader: Callable[..., CameraReader], tmp_path: Path
) -> None:
    # An AVI of MJPEG frames decodes without its trailing index, so a cut one plays partway.
    whole = tmp_path / "clip.avi"
    source = cv2.VideoCapture(str(CLIP))
    writer = cv2.VideoWriter(str(whole), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (768, 576))
    for _ in range(20):
        ok, image = source.read()
        assert ok
        writer.write(image)
    writer.release()
    source.release()
    data = whole.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: int(len(data) * 0.4)])

    reader = make_reader("cut", str(cut), file_speed=5)
    health = wait_until(reader, lambda h: h.frames >= 25, 10.0, "looping the cut file")
    assert health.online and health.reconnects == 0 and health.last_error is None


def test_bad_frames_are_counted_and_dropped(make_reader: Callable[..., CameraReader], tmp_path: Path) -> None:
    # A real video whose frames are too small for check_frame (8x8 < 16 px a side).
    tiny = tmp_path / "tiny.avi"
    writer = cv2.VideoWriter(str(tiny), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (8, 8))
    for shade in range(5):
        writer.write(np.full((8, 8, 3), shade * 40, np.uint8))
    writer.release()

    reader = make_reader("tiny", str(tiny), file_speed=10)
    health = wait_until(reader, lambda h: h.bad_frames > 10, 10.0, "bad frames counted past one loop")
    assert health.frames == 0 and not health.online and reader.latest() is None


def test_stop_wakes_a_waiting_consumer(make_reader: Callable[..., CameraReader]) -> None:
    reader = make_reader("waiter", f"http://127.0.0.1:{free_port()}/", **FAST)
    results: list[object] = []
    waiter = threading.Thread(target=lambda: results.append(reader.wait_newer(0, timeout=30.0)))
    waiter.start()
    time.sleep(0.2)  # let it block; the assertion below is on how fast stop() frees it
    started = time.monotonic()
    reader.stop()
    waiter.join(5.0)
    assert not waiter.is_alive() and results == [None]
    assert time.monotonic() - started < 1.0


# ---------------------------------------------------------------- network


def test_refused_url_is_offline_with_reason_and_stops_fast(
    make_reader: Callable[..., CameraReader], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="edge.vision")
    url = f"http://admin:s3cret@127.0.0.1:{free_port()}/video.mjpg"
    reader = make_reader("refused", url, **FAST)
    health = wait_until(reader, lambda h: h.reconnects >= 2, 10.0, "retried twice")
    assert not health.online and health.frames == 0 and health.input_fps == 0.0
    assert health.last_error is not None and "connection refused" in health.last_error, health
    assert reader.wait_newer(0, timeout=0.2) is None

    started = time.monotonic()
    assert reader.stop(timeout=2.0)
    assert time.monotonic() - started < 1.0
    assert reader_threads("refused") == []
    assert "s3cret" not in caplog.text and "s3cret" not in str(health)
    assert reader.stop() is True  # idempotent


def test_mjpeg_camera_dies_and_comes_back(make_reader: Callable[..., CameraReader]) -> None:
    server = MjpegServer(fps=20).start()
    try:
        reader = make_reader("mjpeg", server.url, **FAST)
        health = wait_until(reader, lambda h: h.online and h.frames >= 10, 10.0, "online")
        assert (health.width, health.height) == (384, 288)
        before = reader.latest()
        assert before is not None

        server.die()
        died = time.monotonic()
        health = wait_until(reader, lambda h: not h.online, FAST["read_timeout_s"] + 2.0, "offline")
        assert time.monotonic() - died <= FAST["read_timeout_s"] + 2.0

        server.start()  # same port
        health = wait_until(reader, lambda h: h.online, 10.0, "online again")
        assert health.reconnects >= 1
        after = reader.wait_newer(before.index, timeout=5.0)
        assert after is not None and after.index > before.index
    finally:
        server.die()


def test_mjpeg_camera_that_stalls_goes_offline_and_recovers(make_reader: Callable[..., CameraReader]) -> None:
    server = MjpegServer(fps=20).start()
    try:
        reader = make_reader("stall", server.url, **FAST)
        wait_until(reader, lambda h: h.online and h.frames >= 5, 10.0, "online")

        server.set_mode("stall")
        stalled = time.monotonic()
        wait_until(reader, lambda h: not h.online, FAST["read_timeout_s"] + 2.0, "offline")
        health = wait_until(reader, lambda h: h.stalls >= 1, FAST["read_timeout_s"] + 3.0, "a stall counted")
        assert time.monotonic() - stalled < FAST["read_timeout_s"] + 3.0
        assert health.last_error is not None and "stall" in health.last_error

        server.set_mode("frames")
        wait_until(reader, lambda h: h.online, 10.0, "online after the stall")

        server.set_mode("stall")
        wait_until(reader, lambda h: not h.online, FAST["read_timeout_s"] + 2.0, "offline again")
        started = time.monotonic()
        reader.stop(timeout=2.0)
        assert time.monotonic() - started <= 2.2
    finally:
        server.die()


def test_garbage_over_http_is_survived(make_reader: Callable[..., CameraReader]) -> None:
    not_http, corrupt = MjpegServer().start(), MjpegServer().start()
    not_http.set_mode("garbage")
    corrupt.set_mode("corrupt")
    try:
        readers = [make_reader("garbage", not_http.url, **FAST), make_reader("corrupt", corrupt.url, **FAST)]
        for reader in readers:
            health = wait_until(reader, lambda h: h.reconnects >= 1, 10.0, "retried")
            assert not health.online and health.frames == 0
            assert health.last_error is not None and not health.last_error.startswith("internal error")
        assert not_http.requests >= 1 and corrupt.requests >= 1
        for reader in readers:
            started = time.monotonic()
            reader.stop(timeout=2.0)
            assert time.monotonic() - started <= 2.2
    finally:
        not_http.die()
        corrupt.die()


# ---------------------------------------------------------------- RTSP

SYSTEM_PYTHON = "/usr/bin/python3"
RTSP_APT_PACKAGES = "python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good"
RTSP_PROBE = """
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer
Gst.init(None)
missing = [name for name in ("filesrc", "qtdemux", "rtpmp4vpay") if not Gst.ElementFactory.find(name)]
if missing:
    raise SystemExit("missing GStreamer elements: " + " ".join(missing))
"""


def rtsp_server_missing() -> str | None:
    """Why the GStreamer RTSP server cannot run here, or None if it can."""
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} is absent"
    probe = subprocess.run([SYSTEM_PYTHON, "-c", RTSP_PROBE], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        detail = (probe.stderr.strip().splitlines() or [probe.stdout.strip()])[-1]
        return f"GStreamer RTSP server unusable ({detail})"
    return None


def start_rtsp_server(port: int) -> subprocess.Popen[bytes]:
    script = REPO / "tests" / "vision" / "rtsp_server.py"
    proc = subprocess.Popen([SYSTEM_PYTHON, str(script), str(port), str(CLIP)], stdout=subprocess.DEVNULL)
    try:
        wait_for_port("127.0.0.1", port)
    except TimeoutError:
        proc.kill()
        proc.wait()
        raise
    return proc


def test_rtsp_camera_survives_its_server_being_killed_and_restarted(
    make_reader: Callable[..., CameraReader],
) -> None:
    missing = rtsp_server_missing()
    if missing is not None:
        pytest.skip(f"{missing}; apt-get install {RTSP_APT_PACKAGES}")
    port = free_port()
    server = start_rtsp_server(port)
    try:
        reader = make_reader("rtsp", f"rtsp://127.0.0.1:{port}/cam", **FAST)
        health = wait_until(reader, lambda h: h.online and h.frames >= 5, 15.0, "online")
        assert (health.width, health.height) == (768, 576)
        before = reader.latest()
        assert before is not None

        server.send_signal(signal.SIGKILL)  # no goodbye (TEARDOWN) to the client
        server.wait()
        wait_until(reader, lambda h: not h.online, FAST["read_timeout_s"] + 2.0, "offline")

        server = start_rtsp_server(port)
        health = wait_until(reader, lambda h: h.online, 15.0, "online again")
        assert health.reconnects >= 1
        after = reader.wait_newer(before.index, timeout=5.0)
        assert after is not None and after.index > before.index
    finally:
        server.kill()
        server.wait()


# ---------------------------------------------------------------- the watchdog


def test_watchdog_abandons_a_read_that_ignores_its_timeout(
    make_reader: Callable[..., CameraReader], tmp_path: Path
) -> None:
    # Opening a FIFO nobody writes blocks inside open(2), where FFmpeg's timeout cannot reach.
    fifo = tmp_path / "camera.fifo"
    os.mkfifo(fifo)
    reader = make_reader("fifo", str(fifo), open_timeout_s=0.5, read_timeout_s=0.5, backoff_initial_s=0.2)
    health = wait_until(reader, lambda h: h.stalls >= 1, 0.5 + 2.0 + 3.0, "stall detected")
    assert not health.online
    assert health.last_error is not None and "hung in open" in health.last_error, health
    assert len(reader_threads("fifo")) >= 2  # the watchdog, a fresh worker (and the abandoned one)

    started = time.monotonic()
    reader.stop(timeout=1.0)
    assert time.monotonic() - started < 1.5
    # Let the stuck open(2) calls return: a writer arrives and leaves at once.
    deadline = time.monotonic() + 10
    while reader_threads("fifo"):
        assert time.monotonic() < deadline, reader_threads("fifo")
        with contextlib.suppress(OSError):  # no reader has it open at this instant
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        time.sleep(0.05)
    assert reader.health().frames == 0


# ---------------------------------------------------------------- URLs


def test_redact_url_hides_credentials() -> None:
    assert redact_url("rtsp://admin:pa@ss/w@10.0.0.5:554/stream1") == "rtsp://***@10.0.0.5:554/stream1"
    assert redact_url("http://user@cam.local/mjpg") == "http://***@cam.local/mjpg"
    assert (
        redact_url("rtsp://10.0.0.9/cam?channel=1&user=admin&password=hunter2")
        == "rtsp://10.0.0.9/cam?channel=1&user=admin&password=***"
    )
    assert redact_url("http://cam.local/video") == "http://cam.local/video"
    assert redact_url("/srv/clips/demo.mp4") == "/srv/clips/demo.mp4"


@pytest.mark.parametrize(
    ("url", "kind", "target"),
    [
        ("rtsp://cam/1", "network", "rtsp://cam/1"),
        ("RTSPS://cam/1", "network", "RTSPS://cam/1"),
        ("https://cam/mjpg", "network", "https://cam/mjpg"),
        ("/dev/video2", "v4l2", "/dev/video2"),
        ("v4l2:0", "v4l2", 0),
        ("file:/srv/demo.mp4", "file", "/srv/demo.mp4"),
        ("file:///srv/demo%20clip.mp4", "file", "/srv/demo clip.mp4"),
        ("clips/demo.mp4", "file", "clips/demo.mp4"),
    ],
)
def test_parse_camera_url(url: str, kind: str, target: object) -> None:
    source = parse_camera_url(url)
    assert (source.kind, source.target) == (kind, target)


@pytest.mark.parametrize("url", ["", "ftp://cam/x", "v4l2:front"])
def test_unsupported_urls_are_refused_up_front(url: str) -> None:
    with pytest.raises(ValueError, match=r"camera URL|v4l2"):
        CameraReader("bad", url)


def test_missing_v4l2_device_is_reported(make_reader: Callable[..., CameraReader]) -> None:
    reader = make_reader("v4l2", "/dev/video99", **FAST)
    health = wait_until(reader, lambda h: h.last_error is not None, 5.0, "failed")
    assert health.last_error == "no such device /dev/video99"
