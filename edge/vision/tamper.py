"""Camera tampering: lens covered, picture blurred, or camera moved, judged against a learned reference."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

TamperKind = Literal["covered", "blurred", "moved"]
KINDS: tuple[TamperKind, ...] = ("covered", "blurred", "moved")

WORK_WIDTH = 320  # sharpness depends on scale, so every camera is judged at this width
_CONTRAST_STD = 48.0  # frames are stretched to this spread first, so dimmer light is not blur
_CANNY_LOW, _CANNY_HIGH = 100, 200  # on the stretched frame: walls, furniture, window frames
# Chance level: how many reference edges a frame also "finds" when slid by 4 working px
# (~1% of the width) in eight directions; a static scene matches far better at zero offset.
_CHANCE_OFFSETS = ((4, 0), (-4, 0), (0, 4), (0, -4), (4, 4), (-4, -4), (4, -4), (-4, 4))
_MIN_EDGE_SHARE = 0.005  # a reference with fewer edges (a blank wall) cannot tell a moved camera
_DILATE = np.ones((3, 3), np.uint8)


@dataclass(frozen=True, slots=True)
class TamperState:
    """Debounced tamper flags and the measurements behind them (None while not measurable)."""

    covered: bool
    blurred: bool
    moved: bool
    learning: bool
    mean: float
    std: float
    sharpness_ratio: float | None
    view_change: float | None


@dataclass(slots=True)
class _Debounced:
    """A flag that follows its raw condition only after it has held for hold_s, in both directions."""

    active: bool = False
    since: float | None = None

    def feed(self, raw: bool | None, now: float, hold_s: float) -> bool:
        """Feed this update's raw condition (None: not measurable now); return True if the flag flipped."""
        if raw is None or raw == self.active:
            self.since = None
            return False
        if self.since is None:
            self.since = now
        if now - self.since < hold_s:
            return False
        self.active, self.since = raw, None
        return True


def _work_gray(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or image.size == 0:
        raise ValueError(f"expected a non-empty uint8 HxW or HxWxC image, got {image.dtype} {image.shape}")
    gray = image
    if image.ndim == 3:
        code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        gray = np.asarray(cv2.cvtColor(image, code), np.uint8)
    height = max(1, round(image.shape[0] * WORK_WIDTH / image.shape[1]))
    return np.asarray(cv2.resize(gray, (WORK_WIDTH, height), interpolation=cv2.INTER_AREA), np.uint8)


def _stretched(gray: npt.NDArray[np.generic], mean: float, std: float) -> npt.NDArray[np.float32]:
    return ((gray.astype(np.float32) - mean) * (_CONTRAST_STD / max(std, 1.0))).astype(np.float32)


def _sharpness(stretched: npt.NDArray[np.float32]) -> float:
    """Variance of the Laplacian of a contrast-stretched frame."""
    _, deviation = cv2.meanStdDev(cv2.Laplacian(stretched, cv2.CV_32F))
    return float(deviation[0, 0]) ** 2


def _edges(stretched: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    image = np.clip(stretched + 128.0, 0, 255).astype(np.uint8)
    return np.asarray(cv2.Canny(cv2.GaussianBlur(image, (3, 3), 0), _CANNY_LOW, _CANNY_HIGH), np.uint8)


def _view_change(reference_edges: npt.NDArray[np.uint8], edges: npt.NDArray[np.uint8]) -> float | None:
    """0 when the reference's edges are all still in place, about 1 when no more than by chance.

    People walking by hide some edges but leave the rest exactly in place; a turned or shifted
    camera leaves only the chance matches a slid frame would also get.
    """
    total = cv2.countNonZero(reference_edges)
    if total < _MIN_EDGE_SHARE * reference_edges.size:
        return None
    near = cv2.dilate(edges, _DILATE)  # one working px of slack for vibration and rounding
    in_place = cv2.countNonZero(cv2.bitwise_and(near, reference_edges)) / total
    chance = sum(
        cv2.countNonZero(cv2.bitwise_and(np.roll(near, offset, axis=(1, 0)), reference_edges))
        for offset in _CHANCE_OFFSETS
    ) / (total * len(_CHANCE_OFFSETS))
    if chance > 0.95:
        return None  # edges everywhere (noise): every offset matches, nothing to tell
    return min(1.0, max(0.0, 1.0 - (in_place - chance) / (1.0 - chance)))


class TamperDetector:
    """Reports a covered lens, a blurred picture or a moved camera, each debounced by hold_s."""

    def __init__(
        self,
        learn_frames: int = 10,
        hold_s: float = 5.0,
        dark_mean: float = 25.0,
        flat_std: float = 10.0,
        blur_ratio: float = 0.25,
        moved_score: float = 0.85,
        adapt_s: float = 120.0,
    ) -> None:
        if learn_frames < 1:
            raise ValueError(f"learn_frames must be >= 1, got {learn_frames}")
        if hold_s < 0 or adapt_s <= 0:
            raise ValueError(f"hold_s must be >= 0 and adapt_s > 0, got {hold_s}, {adapt_s}")
        if not 0 < blur_ratio < 1 or not 0 < moved_score < 1:
            raise ValueError(f"blur_ratio and moved_score must be in (0, 1), got {blur_ratio}, {moved_score}")
        self.learn_frames = learn_frames
        self.hold_s = hold_s
        self.dark_mean = dark_mean
        self.flat_std = flat_std
        self.blur_ratio = blur_ratio
        self.moved_score = moved_score
        self.adapt_s = adapt_s
        self._flags = {kind: _Debounced() for kind in KINDS}
        self._changes: list[tuple[TamperKind, bool]] = []
        self._last_update: float | None = None
        self.reset_reference()

    @property
    def changes(self) -> list[tuple[TamperKind, bool]]:
        """The (kind, active) flags that flipped on the latest update."""
        return list(self._changes)

    def reset_reference(self) -> None:
        """Forget the reference and learn a new one (e.g. after the camera was re-aimed on purpose)."""
        self._learning: list[tuple[npt.NDArray[np.uint8], float]] = []
        self._reference: npt.NDArray[np.float32] | None = None
        self._reference_edges: npt.NDArray[np.uint8] | None = None
        self._reference_sharpness = 0.0

    def update(self, image: npt.NDArray[np.uint8], now: float) -> TamperState:
        """Measure one frame against the reference and return the debounced state."""
        gray = _work_gray(image)
        if self._reference is not None and self._reference.shape != gray.shape:
            self.reset_reference()  # the camera changed resolution: the old reference says nothing
        mean_, std_ = cv2.meanStdDev(gray)
        mean, std = float(mean_[0, 0]), float(std_[0, 0])
        covered = mean < self.dark_mean or std < self.flat_std
        stretched = _stretched(gray, mean, std)
        sharpness = _sharpness(stretched)
        ratio: float | None = None
        change: float | None = None
        blurred: bool | None = None
        moved: bool | None = None
        if self._reference is None and not covered:
            self._learn(gray, sharpness)
        if self._reference_edges is not None and not covered:
            # A covered lens is also blurry and unlike the reference: report only the cause.
            ratio = sharpness / max(self._reference_sharpness, 1e-6)
            blurred = ratio < self.blur_ratio
            edges = _edges(stretched)
            change = _view_change(self._reference_edges, edges)
            if not blurred and change is not None:
                moved = change > self.moved_score
        raw = {"covered": covered, "blurred": blurred, "moved": moved}
        flipped = [kind for kind in KINDS if self._flags[kind].feed(raw[kind], now, self.hold_s)]
        self._changes = [(kind, self._flags[kind].active) for kind in flipped]
        quiet = not any(raw.values()) and not any(flag.active for flag in self._flags.values())
        if quiet and self._reference is not None and self._last_update is not None:
            self._adapt(gray, sharpness, now - self._last_update)
        self._last_update = now
        return TamperState(
            covered=self._flags["covered"].active,
            blurred=self._flags["blurred"].active,
            moved=self._flags["moved"].active,
            learning=self._reference is None,
            mean=mean,
            std=std,
            sharpness_ratio=ratio,
            view_change=change,
        )

    def _learn(self, gray: npt.NDArray[np.uint8], sharpness: float) -> None:
        if self._learning and self._learning[0][0].shape != gray.shape:
            self._learning = []  # the camera changed resolution while learning
        self._learning.append((gray, sharpness))
        if len(self._learning) < self.learn_frames:
            return
        # The median drops people passing through; what stays is the room.
        stack = np.stack([frame for frame, _ in self._learning])
        self._set_reference(
            np.median(stack, axis=0).astype(np.float32),
            float(np.median([value for _, value in self._learning])),
        )
        self._learning = []

    def _adapt(self, gray: npt.NDArray[np.uint8], sharpness: float, elapsed_s: float) -> None:
        """Follow slow changes (daylight, furniture) while nothing is wrong."""
        if self._reference is None or self._reference.shape != gray.shape:
            return
        weight = 1.0 - math.exp(-max(elapsed_s, 0.0) / self.adapt_s)
        reference = self._reference + weight * (gray.astype(np.float32) - self._reference)
        sharpness = self._reference_sharpness + weight * (sharpness - self._reference_sharpness)
        self._set_reference(reference, sharpness)

    def _set_reference(self, reference: npt.NDArray[np.float32], sharpness: float) -> None:
        self._reference = reference
        self._reference_sharpness = sharpness
        mean_, std_ = cv2.meanStdDev(reference)
        self._reference_edges = _edges(_stretched(reference, float(mean_[0, 0]), float(std_[0, 0])))
