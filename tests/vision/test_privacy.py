"""Blurring with the real models: small faces in a wide view are found and never reach disk sharp."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.config_vision import VisionConfig
from edge.vision.models import VisionModels
from edge.vision.snapshots import SnapshotStore
from tests.conftest import REPO

ASTRONAUT = REPO / "tests" / "fixtures" / "images" / "astronaut.jpg"
FACE_IN_PHOTO = (182, 72, 272, 163)  # hand-measured on the 512x512 photo (tests/fixtures/counts.yaml)


@pytest.fixture(scope="module")
def models() -> Iterator[VisionModels]:
    loaded = VisionModels(VisionConfig())
    yield loaded
    loaded.close()


def wide_view() -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The real portrait at 256 px inside a 1920x1080 frame: a face of ~45 px, as across a classroom."""
    canvas = np.full((1080, 1920, 3), 120, np.uint8)
    photo = cv2.imread(str(ASTRONAUT))
    canvas[100:356, 800:1056] = cv2.resize(photo, (256, 256), interpolation=cv2.INTER_AREA)
    x1, y1, x2, y2 = (v // 2 for v in FACE_IN_PHOTO)
    return canvas, (x1 + 800, y1 + 100, x2 + 800, y2 + 100)


def covers(box: tuple[float, ...], target: tuple[int, int, int, int]) -> bool:
    return box[0] <= target[0] + 5 and box[1] <= target[1] + 5 and box[2] >= target[2] - 5 and \
        box[3] >= target[3] - 5


def test_a_small_face_in_a_wide_view_is_found_around_the_head(models: VisionModels) -> None:
    frame, face = wide_view()
    assert models.face is not None and models.face.detect(frame) == []  # too small for the full view
    boxes = models.regions_to_blur(frame)
    assert any(covers(box, face) for box in boxes), boxes


def test_a_saved_snapshot_has_no_sharp_face(models: VisionModels, tmp_path: Path) -> None:
    frame, (x1, y1, x2, y2) = wide_view()
    store = SnapshotStore(tmp_path / "snapshots", face_finder=models.regions_to_blur)
    snap = store.save(frame, "cam1", "test")
    path = store.path_for(snap.snapshot_id)
    assert path is not None and snap.blurred and snap.faces_blurred >= 1
    saved = cv2.imread(str(path))

    def detail(image: np.ndarray) -> float:
        gray = cv2.cvtColor(image[y1:y2, x1:x2], cv2.COLOR_BGR2GRAY)
        return float(cv2.Laplacian(gray, cv2.CV_64F).var())

    assert detail(saved) < 0.1 * detail(frame)
