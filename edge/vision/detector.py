"""One ONNX Runtime session per model, shared by every camera: frame in, labelled boxes out."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edge.errors import ModelRefused
from edge.vision.decoders import DECODERS, Candidates, suppress
from edge.vision.frame_check import check_frame
from edge.vision.model_card import ModelCard, verified_model
from edge.vision.preprocess import Placement, Preprocessor

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Found:
    """One detection in frame pixels."""

    label: str
    score: float
    box: tuple[float, float, float, float]


def check_card_matches(card: ModelCard, session: ort.InferenceSession, where: str) -> None:
    """Refuse a model whose inputs or outputs differ from what its card says."""
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ModelRefused(where, f"the model has {len(inputs)} inputs; one image input expected")
    (actual,) = inputs
    if actual.name != card.input.name:
        raise ModelRefused(where, f"input is named {actual.name!r}, the card says {card.input.name!r}")
    if actual.type != "tensor(float)":
        raise ModelRefused(where, f"input type is {actual.type}, the card says float32")
    if not _shape_fits(actual.shape, card.input.shape):
        raise ModelRefused(where, f"input shape is {actual.shape}, the card says {list(card.input.shape)}")
    outputs = {o.name: o for o in session.get_outputs()}
    for spec in card.outputs:
        if spec.name not in outputs:
            raise ModelRefused(where, f"the card's output {spec.name!r} is not in the model "
                                      f"(it has {sorted(outputs)})")
        if not _shape_fits(outputs[spec.name].shape, spec.shape):
            raise ModelRefused(where, f"output {spec.name!r} has shape {outputs[spec.name].shape}, "
                                      f"the card says {list(spec.shape)}")


def _shape_fits(model_shape: list[int | str | None], card_shape: tuple[int, ...]) -> bool:
    # Symbolic dimensions (batch "N", None) accept the card's number.
    if len(model_shape) != len(card_shape):
        return False
    return all(not isinstance(m, int) or m == c for m, c in zip(model_shape, card_shape, strict=True))


@dataclass(frozen=True, slots=True)
class Prepared:
    """A frame turned into network input, and where it sits in it."""

    tensor: np.ndarray
    placement: Placement


def _finite(found: Candidates) -> Candidates:
    """Drop candidates with NaN/inf: a broken model must not poison NMS or the tracker."""
    keep = np.isfinite(found.boxes).all(axis=1) & np.isfinite(found.scores)
    if keep.all():
        return found
    return Candidates(found.boxes[keep], found.scores[keep], found.classes[keep])


class Detector:
    """A verified model, its session and decoder; thread-safe (ONNX Runtime's run is)."""

    def __init__(self, card_path: Path, *, threads: int = 1, score: float | None = None,
                 nms_iou: float | None = None) -> None:
        self.card, model_path = verified_model(card_path)
        where = str(model_path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        except Exception as err:
            raise ModelRefused(where, f"ONNX Runtime cannot load it: {err}") from err
        check_card_matches(self.card, self.session, where)
        self.score = score if score is not None else self.card.thresholds.score
        self.nms_iou = nms_iou if nms_iou is not None else self.card.thresholds.nms_iou
        self._prepare = Preprocessor(self.card.input)
        self._decode = DECODERS[self.card.decoder]
        self._output_names = [o.name for o in self.card.outputs]
        counted = self.card.person_label if self.card.task == "person" else None
        self.labels = (counted,) if counted else self.card.labels
        self._wanted = np.array([self.card.labels.index(lbl) for lbl in self.labels], np.int64)

    def infer(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        """Run the session on a prepared input (used by benchmarks to time the model alone)."""
        values = self.session.run(self._output_names, {self.card.input.name: tensor})
        return dict(zip(self._output_names, values, strict=True))

    def detect(self, frame: object, score: float | None = None) -> list[Found]:
        """Detect this model's labels in a BGR frame; FrameRejected if it is unusable."""
        return self.finish(self.prepare(frame), score)

    def prepare(self, frame: object) -> Prepared:
        """First half of detect(): check the frame and build the network input."""
        return Prepared(*self._prepare(check_frame(frame)))

    def finish(self, prepared: Prepared, score: float | None = None) -> list[Found]:
        """Second half of detect(): run the model and decode (score overrides the threshold)."""
        return self.decode(prepared, self.infer(prepared.tensor), score)

    def decode(self, prepared: Prepared, outputs: dict[str, np.ndarray],
               score: float | None = None) -> list[Found]:
        """Model outputs to labelled boxes in frame pixels (score overrides the threshold)."""
        placement = prepared.placement
        threshold = self.score if score is None else score
        found = _finite(self._decode(self.card, outputs, self._wanted, threshold))
        found = suppress(found, self.nms_iou)
        boxes = placement.to_frame(found.boxes)
        result = []
        for box, value, cls in zip(boxes, found.scores, found.classes, strict=True):
            x1, y1, x2, y2 = (round(float(v), 1) for v in box)
            if x2 - x1 < 2 or y2 - y1 < 2:
                continue  # clipped to nothing: the box lay in the letterbox padding
            result.append(Found(self.card.labels[int(cls)], round(float(value), 3), (x1, y1, x2, y2)))
        return result
