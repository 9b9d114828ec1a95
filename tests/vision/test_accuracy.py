"""Count accuracy of the committed models against hand-counted ground truth on real images.

Ground truth: tests/fixtures/counts.yaml (15 frames of vtest-cut.mp4 and two photos). The
tolerances below are what scripts/eval_counts.py measured at the chosen thresholds, with one
count of slack per clip frame; re-run that script after changing a model or a threshold.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from edge.config_vision import PrivacyConfig
from edge.vision.detector import Detector, Found
from edge.vision.model_card import load_card
from tests.conftest import REPO

FIXTURES = REPO / "tests" / "fixtures"
PERSON_CARD = REPO / "models" / "nanodet.yaml"
FACE_CARD = REPO / "models" / "blazeface-full-range.yaml"

# Chosen with scripts/eval_counts.py: the person card's thresholds, the config's blur score.
PERSON_SCORE = load_card(PERSON_CARD).thresholds.score
PERSON_NMS = load_card(PERSON_CARD).thresholds.nms_iou
FACE_BLUR_SCORE = PrivacyConfig().blur_face_score  # blur when unsure: below the card's face score

# Measured at PERSON_SCORE / PERSON_NMS (detected - truth): clip frames
# 0:0 10:0 20:-1 30:+1 40:+1 50:+1 60:+1 70:+1 80:-1 90:0 100:0 110:+1 120:0 130:-2 140:-1
# (the +1s are the traffic cone at (170,197), the -1s people behind the sign or the distant
# walker), basketball1 +1 (the ball and hands read as a person, 0.435), astronaut 0.
CLIP_TOLERANCE = 1  # per frame; measured |error| <= 1 except:
CLIP_TOLERANCE_EXCEPT = {130: 2}  # two overlapping pairs: 8 people, 6 found
PHOTO_TOLERANCE = {"basketball1.jpg": 1, "astronaut.jpg": 0}
CLIP_MAE_MEASURED = 0.733
CLIP_MAE_MAX = CLIP_MAE_MEASURED + 0.1  # one more miscount over the 15 frames still fails

TRUTH: dict[str, Any] = yaml.safe_load((FIXTURES / "counts.yaml").read_text(encoding="utf-8"))
CLIP_FRAMES = sorted(int(i) for i in TRUTH["clip"]["frames"])
PHOTOS = sorted(TRUTH["images"])

Box = tuple[float, float, float, float]


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def centre_inside(box: Box, region: Box) -> bool:
    """Whether the centre of box lies inside region."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return region[0] <= cx <= region[2] and region[1] <= cy <= region[3]


def frontal_regions(name: str) -> list[Box]:
    """The annotated frontal face regions of a photo."""
    return [(float(f["box"][0]), float(f["box"][1]), float(f["box"][2]), float(f["box"][3]))
            for f in TRUTH["images"][name]["face_boxes"] if f["kind"] == "frontal"]


@pytest.fixture(scope="module")
def clip() -> dict[int, np.ndarray]:
    """The ground-truth frames of the clip (read in order, 0-based)."""
    wanted = set(CLIP_FRAMES)
    capture = cv2.VideoCapture(str(FIXTURES / TRUTH["clip"]["file"]))
    frames: dict[int, np.ndarray] = {}
    try:
        index = 0
        while len(frames) < len(wanted):
            ok, frame = capture.read()
            assert ok, f"the clip ended before frame {max(wanted)}"
            if index in wanted:
                frames[index] = frame
            index += 1
    finally:
        capture.release()
    return frames


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    images = {}
    for name in PHOTOS:
        image = cv2.imread(str(FIXTURES / "images" / name), cv2.IMREAD_COLOR)
        assert image is not None, name
        images[name] = image
    return images


@pytest.fixture(scope="module")
def person_counts(clip: dict[int, np.ndarray], photos: dict[str, np.ndarray]) -> dict[Any, int]:
    """Persons found per clip frame index and per photo name, at the chosen setting."""
    detector = Detector(PERSON_CARD, threads=2, score=PERSON_SCORE, nms_iou=PERSON_NMS)
    counts: dict[Any, int] = {i: len(detector.detect(f)) for i, f in clip.items()}
    counts.update({name: len(detector.detect(image)) for name, image in photos.items()})
    return counts


@pytest.fixture(scope="module")
def face_card_detector() -> Detector:
    return Detector(FACE_CARD, threads=2)


@pytest.fixture(scope="module")
def face_blur_detector() -> Detector:
    return Detector(FACE_CARD, threads=2, score=FACE_BLUR_SCORE)


@pytest.mark.parametrize("index", CLIP_FRAMES)
def test_clip_frame_count_within_tolerance(index: int, person_counts: dict[Any, int]) -> None:
    truth = int(TRUTH["clip"]["frames"][index]["persons"])
    tolerance = CLIP_TOLERANCE_EXCEPT.get(index, CLIP_TOLERANCE)
    found = person_counts[index]
    assert abs(found - truth) <= tolerance, f"frame {index}: {found} found, {truth} there"


def test_clip_mean_absolute_error(person_counts: dict[Any, int]) -> None:
    errors = [abs(person_counts[i] - int(TRUTH["clip"]["frames"][i]["persons"])) for i in CLIP_FRAMES]
    mae = sum(errors) / len(errors)
    assert mae <= CLIP_MAE_MAX, f"clip MAE {mae:.3f} (measured {CLIP_MAE_MEASURED})"


@pytest.mark.parametrize("name", PHOTOS)
def test_photo_count_within_tolerance(name: str, person_counts: dict[Any, int]) -> None:
    truth = int(TRUTH["images"][name]["persons"])
    assert abs(person_counts[name] - truth) <= PHOTO_TOLERANCE[name], \
        f"{name}: {person_counts[name]} found, {truth} there"


def test_astronaut_has_exactly_one_face_at_the_card_threshold(
        face_card_detector: Detector, photos: dict[str, np.ndarray]) -> None:
    found = face_card_detector.detect(photos["astronaut.jpg"])
    assert len(found) == 1, found
    (region,) = frontal_regions("astronaut.jpg")
    assert iou(found[0].box, region) >= 0.5, (found[0].box, region)


def test_astronaut_has_exactly_one_face_at_the_blur_threshold(
        face_blur_detector: Detector, photos: dict[str, np.ndarray]) -> None:
    assert len(face_blur_detector.detect(photos["astronaut.jpg"])) == 1


def face_on(found: list[Found], region: Box) -> bool:
    return any(centre_inside(f.box, region) and iou(f.box, region) >= 0.3 for f in found)


def test_basketball_frontal_face_is_found_at_the_blur_threshold(
        face_blur_detector: Detector, photos: dict[str, np.ndarray]) -> None:
    # The left man's face (61,88)-(104,138) scores 0.308: found when blurring, not at the card's 0.5.
    found = face_blur_detector.detect(photos["basketball1.jpg"])
    (region,) = frontal_regions("basketball1.jpg")
    assert face_on(found, region), found


def test_no_face_boxes_on_the_clip_at_the_blur_threshold(
        face_blur_detector: Detector, clip: dict[int, np.ndarray]) -> None:
    # Faces in the clip are ~8-10 px: too small to find. The strongest guess on these frames
    # scores 0.21 (heads of the group at the post, frame 60); on all 150 frames 0.2499 (frame 118).
    boxes = {i: face_blur_detector.detect(frame) for i, frame in clip.items()}
    assert not any(boxes.values()), {i: b for i, b in boxes.items() if b}
