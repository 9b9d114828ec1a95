"""Output decoders per model family: raw tensors to candidate boxes in network-input pixels."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from edge.vision.model_card import ModelCard


@dataclass(frozen=True, slots=True)
class Candidates:
    """Boxes [N, 4] (x1, y1, x2, y2 in input pixels), scores [N] and class indices [N]."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    @staticmethod
    def empty() -> Candidates:
        """No candidates."""
        return Candidates(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))


Outputs = Mapping[str, np.ndarray]
Decoder = Callable[[ModelCard, Outputs, np.ndarray, float], Candidates]


def _best_class(scores: np.ndarray, wanted: np.ndarray, threshold: float) -> tuple[np.ndarray, ...]:
    """Per row: the best wanted class and its score; the rows at or above the threshold."""
    sub = scores[:, wanted]
    best = sub.max(axis=1)
    keep = np.nonzero(best >= threshold)[0]
    return keep, best[keep], wanted[sub[keep].argmax(axis=1)]


def decode_nanodet(card: ModelCard, outputs: Outputs, wanted: np.ndarray, threshold: float) -> Candidates:
    """NanoDet (GFL): per stride, class probabilities and a distribution over distances per side."""
    params = card.nanodet or {}
    bins = int(params.get("bins", 11))
    center = float(params.get("cell_center", 0.5))
    width = card.input.size[0]
    by_stride: dict[int, dict[str, np.ndarray]] = {}
    for spec in card.outputs:
        if spec.stride is not None:
            by_stride.setdefault(spec.stride, {})[spec.kind] = outputs[spec.name][0]
    parts = []
    for stride, tensors in sorted(by_stride.items()):
        keep, scores, classes = _best_class(tensors["scores"], wanted, threshold)
        if keep.size == 0:
            continue
        grid = width // stride
        cx = (keep % grid + center) * stride
        cy = (keep // grid + center) * stride
        logits = tensors["box_distribution"][keep].reshape(-1, 4, bins).astype(np.float32)
        logits -= logits.max(axis=2, keepdims=True)  # softmax, stable
        prob = np.exp(logits)
        prob /= prob.sum(axis=2, keepdims=True)
        dist = (prob * np.arange(bins, dtype=np.float32)).sum(axis=2) * stride  # left top right bottom
        boxes = np.stack([cx - dist[:, 0], cy - dist[:, 1], cx + dist[:, 2], cy + dist[:, 3]], axis=1)
        parts.append(Candidates(boxes.astype(np.float32), scores.astype(np.float32), classes))
    return _concat(parts)


def decode_blazeface(card: ModelCard, outputs: Outputs, wanted: np.ndarray, threshold: float) -> Candidates:
    """BlazeFace: one anchor per grid cell, offsets in input pixels, a logit per anchor."""
    params = card.blazeface or {}
    grid_w, grid_h = params.get("anchors", {}).get("grid", [48, 48])
    center = float(params.get("anchors", {}).get("center", 0.5))
    coord = float(params.get("coordinate_scale", card.input.size[0]))
    regs = next(outputs[s.name][0] for s in card.outputs if s.kind == "regressors")
    logits = next(outputs[s.name][0] for s in card.outputs if s.kind == "logits")[:, 0]
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -80.0, 80.0)))
    keep = np.nonzero(scores >= threshold)[0]
    if keep.size == 0:
        return Candidates.empty()
    ax = (keep % grid_w + center) / grid_w
    ay = (keep // grid_w + center) / grid_h
    reg = regs[keep]
    cx, cy = ax + reg[:, 0] / coord, ay + reg[:, 1] / coord
    half_w, half_h = reg[:, 2] / coord / 2, reg[:, 3] / coord / 2
    in_w, in_h = card.input.size
    boxes = np.stack([(cx - half_w) * in_w, (cy - half_h) * in_h,
                      (cx + half_w) * in_w, (cy + half_h) * in_h], axis=1)
    return Candidates(boxes.astype(np.float32), scores[keep].astype(np.float32),
                      np.full(keep.size, wanted[0], np.int64))


def decode_yolo(card: ModelCard, outputs: Outputs, wanted: np.ndarray, threshold: float) -> Candidates:
    """Ultralytics export: one tensor [1, 4 + classes, N] (cx, cy, w, h in input pixels, then scores).

    The transposed [1, N, 4 + classes] layout is accepted too, and a YOLOv5-style objectness
    column when the card says `yolo: {objectness: true}`.
    """
    params = card.yolo or {}
    objectness = bool(params.get("objectness", False))
    raw = outputs[card.outputs[0].name][0]
    extra = 5 if objectness else 4
    columns = len(card.labels) + extra
    rows = raw.T if raw.shape[0] == columns and raw.shape[1] != columns else raw
    scores = rows[:, extra:]
    if objectness:
        scores = scores * rows[:, 4:5]
    keep, best, classes = _best_class(scores, wanted, threshold)
    if keep.size == 0:
        return Candidates.empty()
    cx, cy, w, h = (rows[keep, i] for i in range(4))
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    return Candidates(boxes.astype(np.float32), best.astype(np.float32), classes)


def _concat(parts: list[Candidates]) -> Candidates:
    if not parts:
        return Candidates.empty()
    return Candidates(np.concatenate([p.boxes for p in parts]), np.concatenate([p.scores for p in parts]),
                      np.concatenate([p.classes for p in parts]))


DECODERS: dict[str, Decoder] = {
    "nanodet": decode_nanodet,
    "blazeface": decode_blazeface,
    "yolo": decode_yolo,
}


def suppress(found: Candidates, iou: float, limit: int = 300) -> Candidates:
    """Non-maximum suppression per class (OpenCV's batched NMS); keeps at most `limit` boxes."""
    if found.scores.size == 0:
        return found
    xywh = np.concatenate([found.boxes[:, :2], found.boxes[:, 2:] - found.boxes[:, :2]], axis=1)
    kept = cv2.dnn.NMSBoxesBatched(xywh.tolist(), found.scores.tolist(), found.classes.tolist(),
                                   0.0, iou, top_k=limit)
    index = np.asarray(kept, dtype=np.int64).reshape(-1)
    return Candidates(found.boxes[index], found.scores[index], found.classes[index])
