"""Frame validation: every image the pipeline sees is a contiguous uint8 BGR HxWx3 array."""

from __future__ import annotations

import cv2
import numpy as np

from edge.errors import FrameRejected

MIN_SIDE_PX = 16
MAX_SIDE_PX = 8192


def check_frame(image: object) -> np.ndarray:
    """Return image as a contiguous uint8 BGR HxWx3 array, or raise FrameRejected saying why."""
    if image is None:
        raise FrameRejected("no image (None)")
    if not isinstance(image, np.ndarray):
        raise FrameRejected(f"image is a {type(image).__name__}, not a numpy array")
    if image.size == 0:
        raise FrameRejected(f"image is empty (shape {image.shape})")
    if image.dtype != np.uint8:
        raise FrameRejected(f"image dtype is {image.dtype}, expected uint8")
    if image.ndim == 2:
        channels = 1
    elif image.ndim == 3:
        channels = image.shape[2]
    else:
        raise FrameRejected(f"image has {image.ndim} dimensions (shape {image.shape}), expected HxW or HxWxC")
    if channels not in (1, 3, 4):
        raise FrameRejected(f"image has {channels} channels, expected 1 (gray), 3 (BGR) or 4 (BGRA)")
    height, width = image.shape[:2]
    if not (MIN_SIDE_PX <= width <= MAX_SIDE_PX and MIN_SIDE_PX <= height <= MAX_SIDE_PX):
        raise FrameRejected(
            f"image is {width}x{height}; each side must be {MIN_SIDE_PX}..{MAX_SIDE_PX} px"
        )
    # cvtColor and the ONNX preprocessing want one contiguous block; a view from slicing is not.
    image = np.ascontiguousarray(image)
    if channels == 1:
        return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR))
    if channels == 4:
        return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGRA2BGR))
    return image
