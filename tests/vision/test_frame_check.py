"""check_frame: everything downstream gets contiguous uint8 BGR, or a FrameRejected saying why."""

from __future__ import annotations

import numpy as np
import pytest

from edge.errors import FrameRejected
from edge.vision.frame_check import check_frame


def test_bgr_passes_through_unchanged() -> None:
    image = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    out = check_frame(image)
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    assert np.array_equal(out, image)


def test_gray_becomes_bgr() -> None:
    gray = np.arange(32 * 40, dtype=np.uint32).reshape(32, 40).astype(np.uint8)
    out = check_frame(gray)
    assert out.shape == (32, 40, 3) and out.dtype == np.uint8
    for channel in range(3):
        assert np.array_equal(out[:, :, channel], gray)


def test_single_channel_3d_gray_becomes_bgr() -> None:
    gray = np.full((20, 30, 1), 77, np.uint8)
    assert check_frame(gray).shape == (20, 30, 3)


def test_bgra_drops_alpha() -> None:
    bgra = np.zeros((24, 24, 4), np.uint8)
    bgra[..., 0], bgra[..., 1], bgra[..., 2], bgra[..., 3] = 10, 20, 30, 255
    out = check_frame(bgra)
    assert out.shape == (24, 24, 3)
    assert out[0, 0].tolist() == [10, 20, 30]


def test_non_contiguous_view_is_made_contiguous() -> None:
    big = np.zeros((64, 64, 3), np.uint8)
    view = big[::2, ::2]
    assert not view.flags.c_contiguous
    out = check_frame(view)
    assert out.flags.c_contiguous and out.shape == (32, 32, 3)


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        (None, "None"),
        ([[0, 0], [0, 0]], "not a numpy array"),
        (b"\xff\xd8\xff", "not a numpy array"),
        (np.zeros((0, 0, 3), np.uint8), "empty"),
        (np.zeros((0,), np.uint8), "empty"),
        (np.zeros((32, 32, 3), np.float32), "float32"),
        (np.zeros((32, 32, 3), np.uint16), "uint16"),
        (np.zeros((32, 32), np.bool_), "bool"),
        (np.zeros((1, 1, 3), np.uint8), "1x1"),
        (np.zeros((15, 100, 3), np.uint8), "100x15"),
        (np.zeros((16, 8193), np.uint8), "8193x16"),
        (np.zeros((32, 32, 2), np.uint8), "2 channels"),
        (np.zeros((32, 32, 5), np.uint8), "5 channels"),
        (np.zeros((2, 32, 32, 3), np.uint8), "4 dimensions"),
        (np.zeros((64,), np.uint8), "1 dimensions"),
    ],
)
def test_unusable_images_are_rejected_with_a_reason(image: object, reason: str) -> None:
    with pytest.raises(FrameRejected) as caught:
        check_frame(image)
    assert reason in caught.value.reason


def test_limits_are_inclusive() -> None:
    assert check_frame(np.zeros((16, 16, 3), np.uint8)).shape == (16, 16, 3)
    assert check_frame(np.zeros((16, 8192), np.uint8)).shape == (16, 8192, 3)
