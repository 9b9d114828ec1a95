"""Cameras through the whole gateway: counts on local MQTT, offline cameras, tampering, no pixels out."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from tests.conftest import REPO, Mosquitto, free_port
from tests.gateway_harness import gateway_config_path, running_gateway, watching

CLIP = REPO / "tests" / "fixtures" / "vtest-cut.mp4"


def camera(camera_id: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"id": camera_id, "room_id": "r1", "url": url, "detect_fps": 4, "smoothing_s": 1,
            "open_timeout_s": 2, "read_timeout_s": 2, **extra}


def covered_clip(path: Path) -> Path:
    """Real frames of the clip, then the lens covered (black frames): a derived real video."""
    source = cv2.VideoCapture(str(CLIP))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (768, 576))
    try:
        for _ in range(60):
            ok, frame = source.read()
            assert ok
            writer.write(frame)
        for _ in range(150):
            writer.write(np.full((576, 768, 3), 4, np.uint8))
    finally:
        writer.release()
        source.release()
    return path


@pytest.fixture
def fast_stats(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("edge.sources.cameras.STATS_EVERY_S", 1.0)


async def test_file_camera_counts_people_and_sends_no_pixels(tmp_path: Path, mosquitto: Mosquitto,
                                                             fast_stats: None) -> None:
    prefix = f"t/{tmp_path.name}"
    cams = [camera("cam1", f"file:{CLIP}",
                   zones=[{"id": "path", "polygon": [[0.3, 0.3], [0.95, 0.3], [0.95, 0.75], [0.3, 0.75]]}],
                   lines=[{"id": "door", "a": [0.6, 0.2], "b": [0.6, 0.8]}])]
    path = gateway_config_path(tmp_path, mosquitto, [], cameras=cams)
    async with watching(mosquitto, f"{prefix}/#") as mqtt, running_gateway(path) as gateway:
        await mqtt.wait_json(f"{prefix}/device/cam1/status", lambda b: b["online"], timeout=15)
        # People walk through this clip the whole time: the camera count settles above 1.
        await mqtt.wait_json(f"{prefix}/occupancy/r1/cam1", lambda b: b["count"] >= 2, timeout=20)
        await mqtt.wait_json(f"{prefix}/occupancy/r1/cam1/path", timeout=10)
        presence = await mqtt.wait_json(f"{prefix}/camera/cam1/zone/path/presence",
                                        lambda b: b["present"], timeout=10)
        assert presence["room_id"] == "r1" and isinstance(presence["track_id"], int)
        assert 0 <= presence["ts"] - presence["entered_at"] < 60  # both wall-clock seconds
        stats = await mqtt.wait_json(f"{prefix}/camera/cam1/stats",
                                     lambda b: b["inferences"] > 0 and b["input_fps"] > 0, timeout=10)
        assert 3 <= stats["input_fps"] <= 15, stats  # the clip plays at its own 10 fps
        assert stats["online"] and stats["last_error"] is None
        assert gateway.cameras[0].detections > 0
    # Privacy: nothing that left over MQTT is an image or anywhere near the size of one.
    assert mqtt.messages
    for topic, payload, _ in mqtt.messages:
        assert len(payload) < 4096, topic
        assert b"\xff\xd8\xff" not in payload and b"\x89PNG" not in payload, topic
    snapshots = tmp_path / "data" / "snapshots"
    if snapshots.exists():  # a zone entry keeps a blurred snapshot, owner-only
        assert stat.S_IMODE(snapshots.stat().st_mode) == 0o700
        for item in snapshots.iterdir():
            assert stat.S_IMODE(item.stat().st_mode) == 0o600, item


async def test_a_refusing_camera_is_offline_and_the_others_keep_counting(
        tmp_path: Path, mosquitto: Mosquitto, fast_stats: None) -> None:
    prefix = f"t/{tmp_path.name}"
    dead = f"http://127.0.0.1:{free_port()}/video.mjpg"
    cams = [camera("dead", dead), camera("good", f"file:{CLIP}", smoothing_s=0)]
    path = gateway_config_path(tmp_path, mosquitto, [], cameras=cams)
    async with watching(mosquitto, f"{prefix}/#") as mqtt, running_gateway(path):
        status = await mqtt.wait_json(f"{prefix}/device/dead/status", lambda b: not b["online"], timeout=15)
        assert status["detail"], status
        stats = await mqtt.wait_json(f"{prefix}/camera/dead/stats", timeout=10)
        assert not stats["online"] and stats["last_error"]
        await mqtt.wait_json(f"{prefix}/occupancy/r1/good", lambda b: b["count"] >= 1, timeout=20)
        await asyncio.sleep(1.0)
        later = mqtt.json_on(f"{prefix}/camera/dead/stats")[-1]
        assert later["reconnects"] >= 1 or later["last_error"]


async def test_a_covered_lens_raises_a_tamper_event_with_a_snapshot(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    prefix = f"t/{tmp_path.name}"
    clip = covered_clip(tmp_path / "covered.mp4")
    cams = [camera("cam1", f"file:{clip}", detect_fps=5, tamper={"hold_s": 1.0})]
    path = gateway_config_path(tmp_path, mosquitto, [], cameras=cams)
    async with watching(mosquitto, f"{prefix}/#") as mqtt, running_gateway(path) as gateway:
        event = await mqtt.wait_json(f"{prefix}/event", lambda b: b["type"] == "camera_tamper", timeout=25)
        assert event["data"]["kind"] == "covered" and event["data"]["active"] is True
        assert event["severity"] == "warning" and event["room_id"] == "r1"
        snapshot_id = event["data"].get("snapshot_id")
        assert snapshot_id and gateway.snapshots is not None
        assert gateway.snapshots.path_for(snapshot_id) is not None


async def test_a_network_camera_that_dies_and_returns_is_reported_both_ways(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    from tests.vision.mjpeg_server import MjpegServer

    prefix = f"t/{tmp_path.name}"
    server = MjpegServer(fps=10).start()
    try:
        cams = [camera("ipcam", server.url, read_timeout_s=1.5, open_timeout_s=1.5)]
        path = gateway_config_path(tmp_path, mosquitto, [], cameras=cams)
        async with watching(mosquitto, f"{prefix}/#") as mqtt, running_gateway(path) as gateway:
            topic = f"{prefix}/device/ipcam/status"
            await mqtt.wait_json(topic, lambda b: b["online"], timeout=15)
            before = gateway.cameras[0].frames_analysed
            await asyncio.to_thread(server.die)
            await mqtt.wait_json(topic, lambda b: not b["online"], timeout=15)
            await asyncio.to_thread(server.start)
            def statuses() -> list[bool]:
                return [b["online"] for b in mqtt.json_on(topic)]

            async with asyncio.timeout(30):
                while statuses()[-1] is not True:
                    await asyncio.sleep(0.1)
            assert statuses()[:3] == [True, False, True]
            await asyncio.sleep(1.0)
            assert gateway.cameras[0].frames_analysed > before  # analysis resumed on the new stream
    finally:
        server.die()


async def test_a_camera_whose_every_frame_is_unusable_is_offline_and_says_why(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    prefix = f"t/{tmp_path.name}"
    tiny = tmp_path / "tiny.avi"  # a real video, but 8x8 frames: too small to analyse
    writer = cv2.VideoWriter(str(tiny), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (8, 8))
    for shade in range(10):
        writer.write(np.full((8, 8, 3), shade * 20, np.uint8))
    writer.release()
    path = gateway_config_path(tmp_path, mosquitto, [], cameras=[camera("tiny", f"file:{tiny}")])
    async with watching(mosquitto, f"{prefix}/#") as mqtt, running_gateway(path) as gateway:
        status = await mqtt.wait_json(f"{prefix}/device/tiny/status", lambda b: not b["online"], timeout=15)
        assert status["detail"] == "every frame unusable"
        assert gateway.cameras[0].inferences == 0


def still_then_person_clip(path: Path) -> Path:
    """An empty, still scene (a real frame with nobody in it is hard to cut: a flat wall) for 6 s,
    then a real person photo for 2 s, at 10 fps."""
    person = cv2.resize(cv2.imread(str(REPO / "tests" / "fixtures" / "images" / "astronaut.jpg")), (512, 512))
    wall = np.full((512, 512, 3), (90, 110, 120), np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (512, 512))
    try:
        for _ in range(60):
            writer.write(wall)
        for _ in range(20):
            writer.write(person)
    finally:
        writer.release()
    return path


async def test_an_empty_still_scene_is_watched_at_the_camera_rate_and_a_newcomer_is_seen_at_once(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    # detect_fps 0.5 would leave up to 2 s between looks; an empty, still scene instead passes
    # every frame through the cheap motion gate, so the person is analysed as soon as they appear.
    clip = still_then_person_clip(tmp_path / "still.mp4")
    cams = [camera("cam1", f"file:{clip}", detect_fps=0.5, smoothing_s=0, tamper={"enabled": False})]
    path = gateway_config_path(tmp_path, mosquitto, [], cameras=cams)
    async with running_gateway(path) as gateway:
        service = gateway.cameras[0]
        async with asyncio.timeout(15):
            while service.frames_analysed < 8:  # the first look plus gate checks on still frames
                await asyncio.sleep(0.05)
        assert service.inferences <= 2  # the still frames cost no model runs
        async with asyncio.timeout(15):
            while not service.detections:
                await asyncio.sleep(0.05)
        # At the detect_fps pace 6 s of still frames would have been 3 analyses.
        assert service.frames_analysed >= 20


async def test_a_model_that_fails_on_every_frame_crashes_the_camera_for_a_restart(
        tmp_path: Path, mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    from edge.sources.cameras import FAILED_FRAMES_LIMIT

    def broken(self: object, prepared: object, turn: object = None) -> None:
        raise RuntimeError("the model runtime broke")

    # Staging keeps succeeding between the model's failures: the run must still be counted.
    monkeypatch.setattr("edge.vision.models.VisionModels.finish_persons", broken)
    cams = [camera("cam1", f"file:{CLIP}", detect_fps=10, motion={"enabled": False},
                   tamper={"enabled": False})]
    path = gateway_config_path(tmp_path, mosquitto, [], cameras=cams)
    async with running_gateway(path) as gateway:
        async with asyncio.timeout(30):
            while not any("service camera-cam1 crashed" in r.getMessage() for r in caplog.records):
                await asyncio.sleep(0.1)
        assert gateway.cameras[0].failed_frames >= FAILED_FRAMES_LIMIT
