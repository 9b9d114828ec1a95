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
            self._offset = np.array(norm.mean, np.float32)
            self._factor = 1.0 / np.array(norm.std, np.float32)
        else:
            assert norm.scale_to is not None, "the card validator requires one kind"
            low, high = norm.scale_to
            # pixel / 255 * (high - low) + low  ==  (pixel - offset) * factor
            factor = (high - low) / 255.0
            self._offset = np.full(3, -low / factor, np.float32)
            self._factor = np.full(3, factor, np.float32)
        if spec.color == "RGB":
            # The constants are given in the network's channel order; frames arrive as BGR.
            self._swap = True
        else:
            self._swap = False

    def __call__(self, frame: np.ndarray) -> tuple[np.ndarray, Placement]:
        """Return the [1, ...] float32 input and where the frame was placed in it."""
        frame_h, frame_w = frame.shape[:2]
        if self.spec.letterbox:
            # Keep the aspect ratio; the frame goes to the top-left, the rest stays black.
            scale = min(self.width / frame_w, self.height / frame_h)
            new_w = max(1, min(self.width, round(frame_w * scale)))
            new_h = max(1, min(self.height, round(frame_h * scale)))
            canvas: np.ndarray = np.zeros((self.height, self.width, 3), np.uint8)
            canvas[:new_h, :new_w] = cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_AREA)
            placement = Placement(new_w / frame_w, new_h / frame_h, frame_w, frame_h)
        else:
            canvas = cv2.resize(frame, (self.width, self.height), interpolation=cv2.INTER_AREA)
            placement = Placement(self.width / frame_w, self.height / frame_h, frame_w, frame_h)
        if self._swap:
            canvas = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB)
        tensor: np.ndarray = (canvas.astype(np.float32) - self._offset) * self._factor
        if self.spec.layout == "NCHW":
            tensor = tensor.transpose(2, 0, 1)
        return np.ascontiguousarray(tensor[np.newaxis]), placement
