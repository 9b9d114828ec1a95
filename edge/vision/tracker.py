"""Multi-object tracker: keeps one id per person across detector runs, by IoU then centroid distance."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Box = tuple[float, float, float, float]
"""x1, y1, x2, y2 relative to the frame (0..1), x1 <= x2 and y1 <= y2."""


@dataclass(frozen=True, slots=True)
class Track:
    """One confirmed object: its latest box and score, when it was first and last seen, and how often."""

    track_id: int
    box: Box
    score: float
    first_seen: float
    last_seen: float
    hits: int


@dataclass(slots=True)
class _Candidate:
    """A live track in the making; gets a public id once it has been seen min_hits times."""

    box: Box
    score: float
    first_seen: float
    last_seen: float
    hits: int = 1
    track_id: int | None = None


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when either has no area)."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def centroid_distance(a: Box, b: Box) -> float:
    """Distance between the box centres, in relative frame units."""
    return math.hypot((a[0] + a[2] - b[0] - b[2]) / 2, (a[1] + a[3] - b[1] - b[3]) / 2)


def check_box(box: Box) -> Box:
    """Return box as a tuple of floats, or raise ValueError if it is not an ordered relative box."""
    if len(box) != 4:
        raise ValueError(f"a box has 4 numbers (x1, y1, x2, y2), got {box!r}")
    x1, y1, x2, y2 = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise ValueError(f"box has a non-finite coordinate: {box!r}")
    if x1 > x2 or y1 > y2:
        raise ValueError(f"box must have x1 <= x2 and y1 <= y2, got {box!r}")
    return (x1, y1, x2, y2)


def _greedy(
    pairs: list[tuple[float, int, int]], used_tracks: set[int], used_dets: set[int]
) -> list[tuple[int, int]]:
    """Take pairs best first (pairs are pre-sorted), each track and detection at most once."""
    matched: list[tuple[int, int]] = []
    for _, t, d in pairs:
        if t not in used_tracks and d not in used_dets:
            used_tracks.add(t)
            used_dets.add(d)
            matched.append((t, d))
    return matched


class IouTracker:
    """Greedy IoU tracker with a centroid-distance fallback for the big steps people make at 2 fps."""

    def __init__(
        self,
        match_iou: float = 0.3,
        max_centroid_dist: float = 0.1,
        max_missed_s: float = 2.0,
        min_hits: int = 2,
    ) -> None:
        if not 0 < match_iou <= 1:
            raise ValueError(f"match_iou must be in (0, 1], got {match_iou}")
        if max_centroid_dist < 0:
            raise ValueError(f"max_centroid_dist must be >= 0, got {max_centroid_dist}")
        if max_missed_s < 0:
            raise ValueError(f"max_missed_s must be >= 0, got {max_missed_s}")
        if min_hits < 1:
            raise ValueError(f"min_hits must be >= 1, got {min_hits}")
        self.match_iou = match_iou
        self.max_centroid_dist = max_centroid_dist
        self.max_missed_s = max_missed_s
        self.min_hits = min_hits
        self._live: list[_Candidate] = []
        self._next_id = 1

    def update(self, detections: Sequence[tuple[Box, float]], now: float) -> list[Track]:
        """Match this run's (box, score) detections to tracks; return the confirmed tracks seen now."""
        boxes = [check_box(box) for box, _ in detections]
        # Forget stale tracks first so a long-gone person cannot claim a newcomer's detection.
        self._live = [c for c in self._live if now - c.last_seen <= self.max_missed_s]
        used_tracks: set[int] = set()
        used_dets: set[int] = set()
        by_overlap = sorted(
            ((-iou(c.box, b), t, d) for t, c in enumerate(self._live) for d, b in enumerate(boxes)),
        )
        matches = _greedy([p for p in by_overlap if -p[0] >= self.match_iou], used_tracks, used_dets)
        # People move more than a box width between frames at 2 fps: pair what is left by nearness.
        by_distance = sorted(
            (centroid_distance(c.box, b), t, d)
            for t, c in enumerate(self._live)
            if t not in used_tracks
            for d, b in enumerate(boxes)
            if d not in used_dets
        )
        matches += _greedy([p for p in by_distance if p[0] <= self.max_centroid_dist], used_tracks, used_dets)
        seen: list[_Candidate] = []
        for t, d in matches:
            candidate = self._live[t]
            candidate.box, candidate.score = boxes[d], float(detections[d][1])
            candidate.last_seen = now
            candidate.hits += 1
            seen.append(candidate)
        for d, box in enumerate(boxes):
            if d not in used_dets:
                seen.append(_Candidate(box, float(detections[d][1]), now, now))
                self._live.append(seen[-1])
        for candidate in seen:
            if candidate.track_id is None and candidate.hits >= self.min_hits:
                candidate.track_id = self._next_id
                self._next_id += 1
        return _confirmed(seen)

    def newcomer_since(self) -> float | None:
        """When the oldest unconfirmed newcomer (seen once, waiting for its second look) was seen."""
        return min((c.first_seen for c in self._live if c.track_id is None and c.hits == 1), default=None)

    def tracks(self) -> list[Track]:
        """All live confirmed tracks, including those missed by the latest runs but not yet dropped."""
        return _confirmed(self._live)


def _confirmed(candidates: list[_Candidate]) -> list[Track]:
    """The candidates that have a public id, as Track values ordered by id."""
    tracks = [
        Track(c.track_id, c.box, c.score, c.first_seen, c.last_seen, c.hits)
        for c in candidates
        if c.track_id is not None
    ]
    return sorted(tracks, key=lambda track: track.track_id)
