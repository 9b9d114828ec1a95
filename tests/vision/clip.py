"""The committed real clip (tests/fixtures/vtest-cut.mp4), decoded once per test process."""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np
import numpy.typing as npt

from tests.conftest import REPO

CLIP = REPO / "tests" / "fixtures" / "vtest-cut.mp4"
CLIP_FRAMES = 150

Frame = npt.NDArray[np.uint8]


@cache
def clip_frames() -> tuple[Frame, ...]:
    """Every frame of the clip, in order (768x576 BGR)."""
    clip = cv2.VideoCapture(str(CLIP))
    frames = []
    try:
        while True:
            ok, frame = clip.read()
            if not ok:
                break
            frames.append(np.asarray(frame, np.uint8))
    finally:
        clip.release()
    assert len(frames) == CLIP_FRAMES
    return tuple(frames)
