"""Rooms and cameras in the console: the overview by role, and a blurred still from a real camera."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge.bus import Bus
from edge.clock import SystemClock
from edge.config import EdgeConfig
from edge.config_vision import VisionConfig
from edge.events import CameraStats, DeviceStatus, Envelope, Occupancy, Reading, SafetyEvent
from edge.rooms_view import RoomsView
from edge.sources.cameras import CameraService
from edge.vision.models import VisionModels
from edge.vision.snapshots import SnapshotRefused
from tests.console.harness import login, running_console
from tests.vision.test_privacy import wide_view


@pytest.fixture(scope="module")
def models() -> Iterator[VisionModels]:
    loaded = VisionModels(VisionConfig())
    yield loaded
    loaded.close()


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple[int, int, int, int]]:
    """A real video of the astronaut portrait small in a wide view, and where the face is."""
    frame, face = wide_view()
    path = tmp_path_factory.mktemp("clip") / "wide.avi"
    size = (frame.shape[1], frame.shape[0])
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, size)
    try:
        for _ in range(20):
            writer.write(frame)
    finally:
        writer.release()
    return path, face


def config(clip_path: Path) -> EdgeConfig:
    return EdgeConfig.model_validate({
        "site_id": "s", "gateway_id": "g", "rooms": [{"id": "r1", "name": "Hall"}, {"id": "r2"}],
        "devices": [{"id": "n1", "room_id": "r1", "type": "simulated"}],
        "cameras": [{"id": "cam1", "room_id": "r1", "url": f"file:{clip_path}", "detect_fps": 2},
                    {"id": "cam.2", "room_id": "r2", "url": f"file:{clip_path}"},
                    {"id": "off", "room_id": "r2", "url": f"file:{clip_path}", "enabled": False}],
    })


def camera_service(cfg: EdgeConfig, camera_id: str, models: VisionModels, bus: Bus) -> CameraService:
    async def record(event: SafetyEvent) -> Envelope:
        return Envelope(event, 1, 0.0)

    (cam,) = [c for c in cfg.cameras if c.id == camera_id]
    return CameraService(cam, None, models, bus, SystemClock(), record, None)


@asynccontextmanager
async def running(service: CameraService) -> AsyncIterator[None]:
    """The camera service running until the block ends."""
    task = asyncio.create_task(service.run(lambda: None))
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def first_still(service: CameraService) -> bytes:
    async with asyncio.timeout(20):
        while (data := await service.still()) is None:
            await asyncio.sleep(0.1)
    return data


async def refused_once_a_frame_is_in(service: CameraService) -> bool:
    """True once still() refuses; never a picture in the meantime."""
    async with asyncio.timeout(20):
        while True:
            try:
                data = await service.still()
            except SnapshotRefused:
                return True
            assert data is None, "a still without any blurring"
            await asyncio.sleep(0.1)


def detail(image: np.ndarray, box: tuple[int, int, int, int]) -> float:
    x1, y1, x2, y2 = box
    gray = cv2.cvtColor(image[y1:y2, x1:x2], cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


async def test_rooms_and_cameras_are_listed_for_a_viewer(tmp_path: Path, clip: Any) -> None:
    cfg = config(clip[0])
    bus = Bus()
    view = RoomsView(bus, cfg)
    bus.publish(Reading("n1", "co2", 612.0, "ppm", 100.0))
    bus.publish(DeviceStatus("n1", False, 101.0, "r1", "no reply"))
    bus.publish(Occupancy("r1", 7, 102.0, camera_id="cam1"))
    bus.publish(Occupancy("r1", 2, 103.0, camera_id="cam1", zone_id="door"))
    bus.publish(CameraStats("cam1", "r1", True, 104.0, input_fps=10.0, detect_fps=2.0, last_frame_age_s=0.1))
    view.drain()
    async with running_console(tmp_path, config=cfg, rooms=view) as console, console.client() as client:
        assert (await client.get("/api/rooms")).status_code == 401
        assert (await client.get("/api/cameras")).status_code == 401
        await login(client, "vera")
        rooms = (await client.get("/api/rooms")).json()
        assert rooms == [
            {"room_id": "r1", "name": "Hall",
             "occupancy": {"count": 7, "cameras": {"cam1": 7}, "zones": {"cam1:door": 2}, "ts": 103.0},
             "readings": [{"device_id": "n1", "metric": "co2", "value": 612.0, "unit": "ppm", "ts": 100.0}],
             "devices": [{"device_id": "n1", "name": "n1", "type": "simulated", "online": False,
                          "reason": "no reply", "ts": 101.0}],
             "cameras": ["cam1"]},
            {"room_id": "r2", "name": "r2",
             "occupancy": {"count": None, "cameras": {}, "zones": {}, "ts": None},
             "readings": [], "devices": [], "cameras": ["cam.2"]}]
        cameras = (await client.get("/api/cameras")).json()
        assert cameras[0] == {"camera_id": "cam1", "name": "cam1", "room_id": "r1", "online": True,
                              "input_fps": 10.0, "detect_fps": 2.0, "last_frame_age_s": 0.1,
                              "last_error": None, "ts": 104.0}
        assert [c["camera_id"] for c in cameras] == ["cam1", "cam.2"] and cameras[1]["online"] is None
        # A viewer may see counts but not pictures.
        assert (await client.get("/api/cameras/cam1/still")).status_code == 403


async def test_without_the_view_the_routes_answer_503(tmp_path: Path, clip: Any) -> None:
    async with running_console(tmp_path, config=config(clip[0]), rooms=None) as console, \
            console.client() as client:
        await login(client, "ada")
        for path in ("/api/rooms", "/api/cameras", "/api/cameras/cam1/still"):
            assert (await client.get(path)).status_code == 503, path


async def test_a_security_user_gets_a_blurred_still_from_a_real_camera(
        tmp_path: Path, clip: Any, models: VisionModels) -> None:
    path, face = clip
    cfg = config(path)
    bus = Bus()
    cams = {cid: camera_service(cfg, cid, models, bus) for cid in ("cam1", "cam.2")}
    async with running_console(tmp_path, config=cfg, rooms=RoomsView(bus, cfg), cameras=cams) as console, \
            console.client() as client:
        assert (await client.get("/api/cameras/cam1/still")).status_code == 401
        await login(client, "sam")
        # cam.2 is configured but has shown no frame yet.
        response = await client.get("/api/cameras/cam.2/still")
        assert response.status_code == 404 and "no frame" in response.text
        async with running(cams["cam1"]):
            await first_still(cams["cam1"])
            response = await client.get("/api/cameras/cam1/still")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/jpeg"
        assert response.headers["cache-control"] == "no-store"
        still = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)
        reader = cv2.VideoCapture(str(path))
        ok, sharp = reader.read()
        reader.release()
        assert ok and still is not None and still.shape == sharp.shape
        assert detail(sharp, face) > 50  # the face in the clip has real detail to lose
        assert detail(still, face) < 0.1 * detail(sharp, face)
        # Away from the person the picture is the camera's view, not a blank.
        assert abs(float(still[900:1000, 100:300].mean()) - float(sharp[900:1000, 100:300].mean())) < 3
    assert not list(tmp_path.rglob("*.jp*g")), "a still was written to disk"


@pytest.mark.parametrize("camera_id", ["../x", "%2e%2e", "a/b", "a%2Fb", "nope", "off", "cam1%00", "CAM1",
                                       "%2e%2e%2fcam1", "cam1 ", "-cam1", "x" * 300])
async def test_odd_or_unknown_camera_ids_get_404(tmp_path: Path, clip: Any, camera_id: str) -> None:
    cfg = config(clip[0])
    async with running_console(tmp_path, config=cfg, rooms=RoomsView(Bus(), cfg)) as console, \
            console.client() as client:
        await login(client, "sam")
        response = await client.get(f"/api/cameras/{camera_id}/still")
        assert response.status_code == 404, (camera_id, response.status_code)
        assert not response.headers["content-type"].startswith("image/")


async def test_still_is_none_before_a_frame_then_cached_for_two_seconds(
        clip: Any, models: VisionModels, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = config(clip[0])
    service = camera_service(cfg, "cam1", models, Bus())
    assert await service.still() is None
    async with running(service):
        first = await first_still(service)
        again = await asyncio.gather(*(service.still() for _ in range(10)))
        assert all(data is first for data in again)  # one blurring run served every caller
        monkeypatch.setattr("edge.sources.cameras.STILL_CACHE_S", 0.0)
        fresh = await service.still()
    assert fresh is not None and fresh is not first
    assert cv2.imdecode(np.frombuffer(fresh, np.uint8), cv2.IMREAD_COLOR) is not None


async def test_without_a_face_model_the_still_is_refused_and_the_route_answers_503(
        tmp_path: Path, clip: Any) -> None:
    path, _ = clip
    cfg = config(path)
    # Blurring configured off: the models load no face detector, so no still may be shown.
    sharp_models = VisionModels(VisionConfig.model_validate({"privacy": {"blur_faces": False}}))
    try:
        assert sharp_models.face is None
        bus = Bus()
        service = camera_service(cfg, "cam1", sharp_models, bus)
        async with running_console(tmp_path, config=cfg, rooms=RoomsView(bus, cfg),
                                   cameras={"cam1": service}) as console, console.client() as client:
            await login(client, "sam")
            async with running(service):
                assert await refused_once_a_frame_is_in(service)
                response = await client.get("/api/cameras/cam1/still")
            assert response.status_code == 503 and "no blurred still available" in response.text
            assert not response.headers["content-type"].startswith("image/")
    finally:
        sharp_models.close()
