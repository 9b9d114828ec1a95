"""Decoder families and the card check: a drop-in YOLO-layout model, mismatched cards, bad frames."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper, numpy_helper

from edge.errors import FrameRejected, ModelRefused
from edge.vision.detector import Detector
from edge.vision.model_card import file_sha256

SIZE = 64
# Three candidates in input pixels (cx, cy, w, h) with scores for [person, chair]:
# a confident person, a confident chair, and a person below any sensible threshold.
ROWS = np.array([[32, 32, 16, 16, 0.9, 0.05],
                 [10, 10, 8, 8, 0.1, 0.8],
                 [50, 50, 4, 4, 0.1, 0.0]], np.float32)


def yolo_model(path: Path, transposed: bool = False, input_name: str = "images",
               rows: np.ndarray = ROWS) -> Path:
    """A tiny ONNX graph with the ultralytics output layout; its output depends on the input."""
    table = rows if transposed else rows.T  # ultralytics: [1, 4 + classes, N]
    constant = numpy_helper.from_array(table[np.newaxis].copy(), "table")
    zero = numpy_helper.from_array(np.zeros((1, 1, 1), np.float32), "zero")
    nodes = [
        helper.make_node("ReduceMean", [input_name], ["mean"], keepdims=1),  # [1,1,1,1]
        helper.make_node("Squeeze", ["mean", "axis0"], ["mean3"]),
        helper.make_node("Mul", ["mean3", "zero"], ["nothing"]),
        helper.make_node("Add", ["table", "nothing"], ["output0"]),
    ]
    axis0 = numpy_helper.from_array(np.array([0], np.int64), "axis0")
    graph = helper.make_graph(
        nodes, "yolo-layout",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(table[np.newaxis].shape))],
        [constant, zero, axis0])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def write_card(directory: Path, model: Path, **changes: Any) -> Path:
    shape = [1, 6, 3] if not changes.pop("transposed", False) else [1, 3, 6]
    card: dict[str, Any] = {
        "name": "tiny-yolo", "file": model.name, "sha256": file_sha256(model),
        "size_bytes": model.stat().st_size, "task": "person", "decoder": "yolo",
        "input": {"name": "images", "layout": "NCHW", "shape": [1, 3, SIZE, SIZE], "size": [SIZE, SIZE],
                  "dtype": "float32", "color": "RGB", "normalization": {"scale_to": [0.0, 1.0]},
                  "letterbox": True},
        "outputs": [{"name": "output0", "shape": shape, "kind": "predictions"}],
        "labels": ["person", "chair"], "person_label": "person",
        "thresholds": {"score": 0.5, "nms_iou": 0.5},
        "licence": "test", "provenance": {"made_by": "tests/vision/test_decoders.py"},
    }
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            card[section][field] = value
        else:
            card[section] = value
    path = directory / "tiny-yolo.yaml"
    path.write_text(yaml.safe_dump(card, sort_keys=False))
    return path


@pytest.mark.parametrize("transposed", [False, True], ids=["ultralytics", "transposed"])
def test_a_yolo_export_is_a_card_not_code(tmp_path: Path, transposed: bool) -> None:
    model = yolo_model(tmp_path / "tiny-yolo.onnx", transposed=transposed)
    detector = Detector(write_card(tmp_path, model, transposed=transposed))
    # A 128x64 frame letterboxes into 64x64 at scale 0.5 (top-left), so input boxes double.
    found = detector.detect(np.full((64, 128, 3), 90, np.uint8))
    assert [(f.label, f.score) for f in found] == [("person", 0.9)]  # chair not counted, 0.1 dropped
    assert found[0].box == (48.0, 48.0, 80.0, 64.0)  # (24..40) * 2, clipped to the frame height


def test_objectness_column_multiplies_scores(tmp_path: Path) -> None:
    model = yolo_model(tmp_path / "tiny-yolo.onnx")
    # Read as YOLOv5 (objectness in column 4): the first row's score becomes 0.05 * 0.9.
    card = write_card(tmp_path, model, yolo={"objectness": True}, labels=["person"])
    detector = Detector(card)
    assert detector.detect(np.zeros((64, 64, 3), np.uint8)) == []


@pytest.mark.parametrize(("changes", "reason"), [
    ({"input__name": "input_1:0"}, "input is named 'images'"),
    ({"input__shape": [1, 3, 640, 640], "input__size": [640, 640]}, "input shape"),
    ({"outputs": [{"name": "boxes", "shape": [1, 6, 3], "kind": "predictions"}]}, "not in the model"),
    ({"outputs": [{"name": "output0", "shape": [1, 6, 8400], "kind": "predictions"}]}, "has shape"),
    ({"outputs": [{"name": "output0", "shape": [1, 84, 8400], "kind": "predictions"}]},
     r"no dimension of 6 \(4 box values \+ 2 labels\)"),
    ({"person_label": None}, "needs person_label"),
], ids=["input-name", "input-shape", "output-name", "output-shape", "labels-vs-output", "no-person-label"])
def test_a_card_that_does_not_match_the_model_is_refused(tmp_path: Path, changes: dict[str, Any],
                                                         reason: str) -> None:
    model = yolo_model(tmp_path / "tiny-yolo.onnx")
    with pytest.raises(ModelRefused, match=reason):
        Detector(write_card(tmp_path, model, **changes))


def test_a_file_that_is_not_onnx_is_refused_even_with_a_matching_sha(tmp_path: Path) -> None:
    model = tmp_path / "tiny-yolo.onnx"
    model.write_bytes(b"this is not a model" * 10)
    with pytest.raises(ModelRefused, match="ONNX Runtime cannot load it"):
        Detector(write_card(tmp_path, model))


@pytest.mark.parametrize("frame", [
    np.zeros((64, 64, 3), np.float32), np.zeros((64, 64, 3), np.uint16), np.zeros((0, 64, 3), np.uint8),
    np.zeros((64, 64, 5), np.uint8), None, "a string",
], ids=["float32", "uint16", "empty", "5-channels", "none", "str"])
def test_bad_frames_are_rejected_with_a_reason(tmp_path: Path, frame: object) -> None:
    detector = Detector(write_card(tmp_path, yolo_model(tmp_path / "tiny-yolo.onnx")))
    with pytest.raises(FrameRejected):
        detector.detect(frame)


def test_a_grey_frame_is_accepted(tmp_path: Path) -> None:
    detector = Detector(write_card(tmp_path, yolo_model(tmp_path / "tiny-yolo.onnx")))
    assert len(detector.detect(np.full((64, 64), 128, np.uint8))) == 1


def test_non_finite_boxes_from_a_model_are_dropped(tmp_path: Path) -> None:
    rows = ROWS.copy()
    rows[0, :4] = np.nan  # the confident person has NaN coordinates
    rows[2, 4] = 0.95  # the small person is confident now
    rows[2, 2] = np.inf
    detector = Detector(write_card(tmp_path, yolo_model(tmp_path / "tiny-yolo.onnx", rows=rows)))
    assert detector.detect(np.zeros((64, 64, 3), np.uint8)) == []
