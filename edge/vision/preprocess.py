"""Frames to network input: letterbox to the model's size, colour order, normalisation, layout."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.vision.model_card import InputSpec


@dataclass(frozen=True, slots=True)
class Placement:
    """Where the frame sits inside the network input: undo it to map boxes back."""

    scale_x: float
    scale_y: float
    frame_w: int
    frame_h: int

    def to_frame(self, boxes: np.ndarray) -> np.ndarray:
        """Map [N, 4] x1,y1,x2,y2 boxes from input pixels to frame pixels, clipped to the frame."""
        out = boxes.astype(np.float32, copy=True)
        out[:, 0::2] = np.clip(out[:, 0::2] / self.scale_x, 0, self.frame_w)
        out[:, 1::2] = np.clip(out[:, 1::2] / self.scale_y, 0, self.frame_h)
        return out


class Preprocessor:
    """Turns a BGR uint8 frame into the tensor a card describes (constants prepared once)."""

    def __init__(self, spec: InputSpec) -> None:
        self.spec = spec
        self.width, self.height = spec.size
        norm = spec.normalization
        if norm.mean is not None and norm.std is not None:
            offset = np.array(norm.mean, np.float32)
            factor = 1.0 / np.array(norm.std, np.float32)
        else:
            assert norm.scale_to is not None, "the card validator requires one kind"
            low, high = norm.scale_to
            # pixel / 255 * (high - low) + low  ==  (pixel - offset) * factor
            step = (high - low) / 255.0
            offset = np.full(3, -low / step, np.float32)
            factor = np.full(3, step, np.float32)
        self._nchw = spec.layout == "NCHW"
        # The constants are in the network's channel order; OpenCV swaps BGR->RGB before
        # subtracting them, as the card means.
        self._scalefactor = (*factor.tolist(), 0.0)
        self._mean = (*offset.tolist(), 0.0)
        # What a black pixel becomes: the letterbox padding.
        self._pad = (-offset * factor).astype(np.float32)

    def _blob_params(self, width: int, height: int) -> cv2.dnn.Image2BlobParams:
        # A new object per call: one Preprocessor serves every camera's thread at once.
        params = cv2.dnn.Image2BlobParams()
        params.scalefactor = self._scalefactor
        params.mean = self._mean
        params.size = (width, height)
        params.swapRB = self.spec.color == "RGB"
        params.ddepth = cv2.CV_32F
        params.datalayout = cv2.DNN_LAYOUT_NCHW if self._nchw else cv2.DNN_LAYOUT_NHWC
        return params

    def __call__(self, frame: np.ndarray) -> tuple[np.ndarray, Placement]:
        """Return the [1, ...] float32 input and where the frame was placed in it."""
        frame_h, frame_w = frame.shape[:2]
        if self.spec.letterbox:
            # Keep the aspect ratio; the frame goes to the top-left, the rest stays black.
            scale = min(self.width / frame_w, self.height / frame_h)
            new_w = max(1, min(self.width, round(frame_w * scale)))
            new_h = max(1, min(self.height, round(frame_h * scale)))
        else:
            new_w, new_h = self.width, self.height
        placement = Placement(new_w / frame_w, new_h / frame_h, frame_w, frame_h)
        resized = cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_AREA)
        # One OpenCV pass does colour order, normalisation and layout (numpy took 2-3x longer).
        blob = cv2.dnn.blobFromImageWithParams(resized, self._blob_params(new_w, new_h))
        if new_w == self.width and new_h == self.height:
            return np.ascontiguousarray(blob, dtype=np.float32), placement
        if self._nchw:
            tensor = np.empty((1, 3, self.height, self.width), np.float32)
            tensor[0] = self._pad[:, None, None]
            tensor[0, :, :new_h, :new_w] = blob[0]
        else:
            tensor = np.empty((1, self.height, self.width, 3), np.float32)
            tensor[0] = self._pad
            tensor[0, :new_h, :new_w, :] = blob[0]
        return tensor, placement
