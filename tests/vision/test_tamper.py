"""TamperDetector on the real clip: quiet while people walk; covered, blurred, moved held and cleared."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import cache

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from edge.vision.tamper import TamperDetector, TamperKind, TamperState
from tests.vision.clip import Frame, clip_frames

HOLD_S = 5.0
STEP_S = 0.5  # the pipeline's 2 fps

Step = tuple[float, TamperState, list[tuple[TamperKind, bool]]]


def walking(start: int = 0, spoil: Callable[[Frame], Frame] | None = None) -> Iterator[Frame]:
    """Real frames at 2 fps (every 5th of the 10 fps clip), round and round from start, maybe spoiled."""
    index = start
    while True:
        yield clip_frames()[index % 150] if spoil is None else spoiled(spoil, index % 150)
        index += 5


@cache
def spoiled(spoil: Callable[[Frame], Frame], index: int) -> Frame:
    """Each spoiled frame made once: the tests revisit the same 30 frames many times."""
    return spoil(clip_frames()[index])


@cache
def noise_field(shape: tuple[int, ...], seed: int, sigma: float = 3.0) -> npt.NDArray[np.int16]:
    return np.rint(np.random.default_rng(seed).normal(0.0, sigma, shape)).astype(np.int16)


def noisy(frame: Frame, seed: int) -> Frame:
    """Sensor noise, which a covered or defocused camera still delivers."""
    return np.asarray(np.clip(frame.astype(np.int16) + noise_field(frame.shape, seed), 0, 255), np.uint8)


def darkened(frame: Frame) -> Frame:
    """The lens taped over or the feed blacked out: the real frame at 5% brightness, plus noise."""
    return noisy((frame * 0.05).astype(np.uint8), seed=1)


def flat_grey(frame: Frame) -> Frame:
    """A sheet of paper held against the lens: bright, almost uniform, a trace of the room through it."""
    paper = cv2.addWeighted(frame, 0.1, np.full_like(frame, 215), 0.9, 0)
    height, width = frame.shape[:2]
    # A 20 px blur, done at 1/8 size because a full-size one is slow.
    small = cv2.resize(paper, (width // 8, height // 8), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), 2.5)
    back = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    return noisy(np.asarray(back, np.uint8), seed=2)


def defocused(frame: Frame) -> Frame:
    return noisy(np.asarray(cv2.GaussianBlur(frame, (0, 0), 4), np.uint8), seed=3)


def shifted(frame: Frame, dx: float = 0.12, dy: float = 0.05) -> Frame:
    """The camera knocked sideways: the real frame moved by a share of its size."""
    height, width = frame.shape[:2]
    matrix = np.array([[1, 0, dx * width], [0, 1, dy * height]], np.float32)
    return np.asarray(cv2.warpAffine(frame, matrix, (width, height), borderMode=cv2.BORDER_REFLECT), np.uint8)


def turned(frame: Frame) -> Frame:
    height, width = frame.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), 10.0, 1.0)
    return np.asarray(cv2.warpAffine(frame, matrix, (width, height), borderMode=cv2.BORDER_REFLECT), np.uint8)


def run(detector: TamperDetector, frames: Iterable[Frame], start: float, seconds: float) -> list[Step]:
    steps = []
    for i, frame in zip(range(round(seconds / STEP_S)), frames, strict=False):
        now = start + i * STEP_S
        steps.append((now, detector.update(frame, now), detector.changes))
    return steps


def learned() -> tuple[TamperDetector, float]:
    """A detector that has learned its reference from 10 real frames; returns it and the next time."""
    detector = TamperDetector(hold_s=HOLD_S)
    steps = run(detector, walking(), 0.0, 10 * STEP_S)
    assert steps[-2][1].learning and not steps[-1][1].learning
    return detector, 10 * STEP_S


def flips(steps: list[Step]) -> list[tuple[float, TamperKind, bool]]:
    return [(now, kind, active) for now, _, changes in steps for kind, active in changes]


def test_people_walking_through_the_whole_clip_are_no_tamper() -> None:
    detector = TamperDetector(hold_s=HOLD_S)
    states = []
    for i, frame in enumerate(clip_frames()):  # every frame at 10 fps: the reference is learned in 1 s
        states.append(detector.update(frame, i / 10))
        assert detector.changes == []
    measured = [s for s in states if not s.learning]
    assert not any(s.covered or s.blurred or s.moved for s in states)
    worst_change = max(s.view_change or 0.0 for s in measured)
    worst_sharpness = min(s.sharpness_ratio or 1.0 for s in measured)
    print(f"clip: view_change <= {worst_change:.3f}, sharpness_ratio >= {worst_sharpness:.3f}")
    assert worst_change < 0.5 * detector.moved_score
    assert worst_sharpness > 3 * detector.blur_ratio


def test_dimmer_light_is_no_tamper() -> None:
    detector, start = learned()
    dim = walking(50, lambda f: noisy((f * 0.45).astype(np.uint8), seed=4))
    steps = run(detector, dim, start, 20.0)
    assert flips(steps) == []


TAMPERS: dict[str, tuple[Callable[[Frame], Frame], TamperKind]] = {
    "dark": (darkened, "covered"),
    "paper": (flat_grey, "covered"),
    "defocused": (defocused, "blurred"),
    "shifted": (shifted, "moved"),
    "turned": (turned, "moved"),
}


@pytest.mark.parametrize("name", list(TAMPERS))
def test_tamper_reported_after_hold_s_and_cleared_after_hold_s(name: str) -> None:
    spoil, kind = TAMPERS[name]
    detector, start = learned()
    steps = run(detector, walking(50, spoil), start, 12.0)
    assert flips(steps) == [(start + HOLD_S, kind, True)]
    assert all(getattr(state, kind) == (now >= start + HOLD_S) for now, state, _ in steps)
    back = start + 12.0
    restored = run(detector, walking(100), back, 12.0)
    assert flips(restored) == [(back + HOLD_S, kind, False)]
    final = restored[-1][1]
    assert not (final.covered or final.blurred or final.moved)


def test_measurements_say_why() -> None:
    detector, start = learned()
    frame = clip_frames()[60]
    covered = detector.update(darkened(frame), start)
    assert covered.mean < detector.dark_mean and covered.sharpness_ratio is None
    blurred = detector.update(defocused(frame), start + 0.5)
    assert blurred.sharpness_ratio is not None and blurred.sharpness_ratio < detector.blur_ratio
    moved = detector.update(shifted(frame), start + 1.0)
    assert moved.view_change is not None and moved.view_change > detector.moved_score
    print(f"blurred sharpness_ratio {blurred.sharpness_ratio:.3f}, moved view_change {moved.view_change:.3f}")


def test_a_short_cover_is_not_reported_and_flicker_does_not_flap() -> None:
    detector, start = learned()
    frames = walking(30)
    steps = run(detector, walking(0, darkened), start, 3.0)  # a hand for 3 s
    steps += run(detector, frames, start + 3.0, 3.0)
    # A cable with a loose contact: black for 1 s, fine for 1 s, for a minute.
    dark, fine = walking(60, darkened), walking(60)
    flicker = (next(dark) if (i // 2) % 2 == 0 else next(fine) for i in range(1000))
    steps += run(detector, flicker, start + 6.0, 60.0)
    assert flips(steps) == []


def test_reset_reference_accepts_a_new_view() -> None:
    detector, start = learned()
    moved = run(detector, walking(40, shifted), start, 8.0)
    assert flips(moved) == [(start + HOLD_S, "moved", True)]
    detector.reset_reference()  # someone re-aimed the camera on purpose
    after = start + 8.0
    steps = run(detector, walking(80, shifted), after, 20.0)
    learned_at = next(now for now, state, _ in steps if not state.learning)
    assert learned_at == after + 9 * STEP_S
    assert flips(steps) == [(learned_at + HOLD_S, "moved", False)]


def test_covered_frames_are_not_learned() -> None:
    detector = TamperDetector(learn_frames=4)
    frames = clip_frames()
    states = [detector.update(darkened(frames[i]), i * 0.5) for i in range(3)]
    states += [detector.update(frames[i], 1.5 + i * 0.5) for i in range(4)]
    assert [s.learning for s in states] == [True] * 6 + [False]


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="uint8"):
        TamperDetector().update(np.zeros((48, 64, 3), np.float64), 0.0)
    with pytest.raises(ValueError, match="blur_ratio"):
        TamperDetector(blur_ratio=1.5)
