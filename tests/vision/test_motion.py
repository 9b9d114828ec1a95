"""Motion gate on real frames: a still room costs one recheck per recheck_s, people walking every frame."""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from edge.vision.motion import MotionGate
from tests.vision.clip import Frame, clip_frames

CLIP_FPS = 10.0



@cache
def noise_fields(shape: tuple[int, ...], sigma: float, count: int = 8) -> tuple[npt.NDArray[np.int16], ...]:
    """Gaussian sensor noise, made once: drawing 1.3 M normals per frame would make the tests slow."""
    rng = np.random.default_rng(1234)
    return tuple(np.rint(rng.normal(0.0, sigma, shape)).astype(np.int16) for _ in range(count))


def with_noise(frame: Frame, rng: np.random.Generator, sigma: float = 4.0) -> Frame:
    """The same real frame as a camera would deliver it again, with different sensor noise."""
    fields = noise_fields(frame.shape, sigma)
    noise = fields[rng.integers(len(fields))]
    noisy: Frame = np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return noisy


def still_scene(seconds: float, fps: float = 2.0, sigma: float = 4.0) -> list[tuple[float, Frame]]:
    rng = np.random.default_rng(1)
    base = clip_frames()[0]
    return [(i / fps, with_noise(base, rng, sigma)) for i in range(round(seconds * fps) + 1)]


@pytest.mark.parametrize("sigma", [4.0, 10.0], ids=["daylight-noise", "dim-room-noise"])
def test_still_scene_infers_only_first_and_on_each_recheck(sigma: float) -> None:
    gate = MotionGate(recheck_s=10.0)
    decisions = [(now, gate.check(frame, now)) for now, frame in still_scene(60.0, sigma=sigma)]
    inferred = [(now, d.reason) for now, d in decisions if d.infer]
    assert inferred == [(0.0, "first")] + [(float(t), "recheck") for t in range(10, 61, 10)]
    assert max(d.changed_fraction for _, d in decisions[1:]) < gate.min_changed_fraction


def test_gate_saves_at_least_five_times_the_inference_on_a_still_scene() -> None:
    gate = MotionGate()
    frames = still_scene(60.0)
    gated = sum(gate.check(frame, now).infer for now, frame in frames)
    assert len(frames) >= 5 * gated  # without the gate every frame is inferred


@pytest.mark.parametrize("step", [1, 5], ids=["10fps", "2fps"])
def test_people_walking_trigger_on_most_frames(step: int) -> None:
    gate = MotionGate()
    frames = clip_frames()[::step]
    decisions = [gate.check(frame, i * step / CLIP_FPS) for i, frame in enumerate(frames)]
    motion = sum(d.reason == "motion" for d in decisions)
    assert decisions[0].reason == "first"
    assert motion >= 0.9 * (len(frames) - 1)


def test_people_who_stop_moving_stop_costing_inference() -> None:
    rng = np.random.default_rng(2)
    early, later = clip_frames()[0], clip_frames()[140]  # people have walked to new places
    gate = MotionGate()
    reasons = [gate.check(with_noise(early, rng), i / 2).reason for i in range(6)]
    reasons += [gate.check(with_noise(later, rng), 3.0 + i / 2).reason for i in range(8)]
    assert reasons == ["first"] + ["still"] * 5 + ["motion"] + ["still"] * 7


def test_slow_change_accumulates_until_it_counts() -> None:
    """Each step is too small to count against the previous frame, but the detector's view drifts away."""
    start, end = (f.astype(np.float32) for f in (clip_frames()[0], clip_frames()[100]))
    gate = MotionGate(recheck_s=1000.0)
    steps = 40
    decisions = []
    for i in range(steps + 1):
        frame = np.clip(start + (end - start) * (i / steps), 0, 255).astype(np.uint8)
        decisions.append(gate.check(frame, i * 0.5))
    step_gate = MotionGate()
    first, second = (np.clip(start + (end - start) * (i / steps), 0, 255).astype(np.uint8) for i in (0, 1))
    step_gate.check(first, 0.0)
    assert step_gate.check(second, 0.5).reason == "still"  # one step alone is below the threshold
    assert any(d.reason == "motion" for d in decisions[1:])


def test_mark_inferred_restarts_the_recheck_clock() -> None:
    gate = MotionGate(recheck_s=10.0)
    frames = still_scene(14.0)
    inferred = []
    for now, frame in frames:
        if gate.check(frame, now).infer:
            inferred.append(now)
        if now == 5.0:
            gate.mark_inferred(now)
    assert inferred == [0.0]  # the recheck moved from 10 s to 15 s


def test_resolution_change_starts_over() -> None:
    gate = MotionGate()
    frame = clip_frames()[0]
    gate.check(frame, 0.0)
    assert gate.check(np.asarray(cv2.resize(frame, (640, 360)), np.uint8), 0.5).reason == "first"


def test_bad_input_and_settings_are_refused() -> None:
    gate = MotionGate()
    with pytest.raises(ValueError, match="uint8"):
        gate.check(np.zeros((48, 64, 3), np.float32), 0.0)
    with pytest.raises(ValueError, match="min_changed_fraction"):
        MotionGate(min_changed_fraction=0.0)
    with pytest.raises(ValueError, match="recheck_s"):
        MotionGate(recheck_s=0.0)
