"""The committed models: cards valid, sha256 enforced, outputs as the cards say on a real frame."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from edge.errors import ModelRefused
from edge.vision.model_card import ModelCard, load_card, verified_model
from tests.conftest import REPO
from tests.vision.clip import clip_frames

MODELS = REPO / "models"
CARDS = sorted(MODELS.glob("*.yaml"))


def real_frame() -> np.ndarray:
    return clip_frames()[0]


def network_input(card: ModelCard, frame: np.ndarray) -> np.ndarray:
    """Plain resize (no letterbox) and the card's normalisation: enough to check shapes."""
    width, height = card.input.size
    image = cv2.resize(frame, (width, height)).astype(np.float32)
    if card.input.color == "RGB":
        image = image[:, :, ::-1]
    norm = card.input.normalization
    if norm.mean is not None and norm.std is not None:
        image = (image - np.array(norm.mean, np.float32)) / np.array(norm.std, np.float32)
    else:
        assert norm.scale_to is not None
        low, high = norm.scale_to
        image = image / 255.0 * (high - low) + low
    if card.input.layout == "NCHW":
        image = image.transpose(2, 0, 1)
    return np.ascontiguousarray(image[np.newaxis], dtype=np.float32)


def test_both_models_are_committed_with_cards() -> None:
    assert {load_card(c).task for c in CARDS} == {"person", "face"}
    total = sum(p.stat().st_size for p in MODELS.iterdir())
    assert total < 40 * 1024 * 1024


@pytest.mark.parametrize("card_path", CARDS, ids=lambda p: p.stem)
def test_model_matches_its_card_on_a_real_frame(card_path: Path) -> None:
    card, model_path = verified_model(card_path)
    assert model_path.stat().st_size == card.size_bytes
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    (model_input,) = session.get_inputs()
    assert model_input.name == card.input.name and tuple(model_input.shape) == card.input.shape
    names = [o.name for o in card.outputs]
    results = session.run(names, {card.input.name: network_input(card, real_frame())})
    for spec, value in zip(card.outputs, results, strict=True):
        assert value.shape == spec.shape, spec.name
        assert np.isfinite(value).all()
    if card.decoder == "nanodet":
        scores = [r for s, r in zip(card.outputs, results, strict=True) if s.kind == "scores"]
        # A street with people walking: some cell must score "person" above the threshold.
        assert max(float(s[0, :, 0].max()) for s in scores) > card.thresholds.score


def test_a_tampered_model_is_refused(tmp_path: Path) -> None:
    card_path = MODELS / "blazeface-full-range.yaml"
    shutil.copy(card_path, tmp_path / card_path.name)
    data = bytearray((MODELS / "blazeface-full-range.onnx").read_bytes())
    data[len(data) // 2] ^= 0x01
    (tmp_path / "blazeface-full-range.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelRefused, match="differs from its card"):
        verified_model(tmp_path / card_path.name)
    (tmp_path / "blazeface-full-range.onnx").unlink()
    with pytest.raises(ModelRefused, match="cannot read the model"):
        verified_model(tmp_path / card_path.name)


def test_a_broken_card_says_which_key(tmp_path: Path) -> None:
    text = (MODELS / "nanodet.yaml").read_text().replace("decoder: nanodet", "decoder: ssd-v9")
    (tmp_path / "nanodet.yaml").write_text(text)
    with pytest.raises(ModelRefused, match="decoder: Input should be"):
        load_card(tmp_path / "nanodet.yaml")
    (tmp_path / "bad.yaml").write_text("name: [unclosed")
    with pytest.raises(ModelRefused, match="cannot read the card"):
        load_card(tmp_path / "bad.yaml")
