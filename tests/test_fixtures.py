"""The committed real test clip decodes with the OpenCV the project depends on."""

from __future__ import annotations

import cv2

from tests.conftest import REPO


def test_vtest_cut_decodes_to_its_documented_frames() -> None:
    clip = cv2.VideoCapture(str(REPO / "tests" / "fixtures" / "vtest-cut.mp4"))
    try:
        assert clip.isOpened()
        assert clip.get(cv2.CAP_PROP_FPS) == 10.0
        frames = 0
        while True:
            ok, frame = clip.read()
            if not ok:
                break
            assert frame.shape == (576, 768, 3)
            frames += 1
    finally:
        clip.release()
    assert frames == 150
