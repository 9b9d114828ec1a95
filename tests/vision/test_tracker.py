"""IouTracker: ids kept across small and large steps, new ids for new objects, drop after max_missed_s."""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np
import pytest

from edge.vision.tracker import Box, IouTracker, Track, centroid_distance, iou
from tests.conftest import REPO

CLIP = REPO / "tests" / "fixtures" / "vtest-cut.mp4"


def person(x: float, y: float, w: float = 0.06, h: float = 0.2) -> Box:
    """A person-shaped box with its top-left corner at (x, y)."""
    return (x, y, x + w, y + h)


def ids(tracks: list[Track]) -> list[int]:
    return [t.track_id for t in tracks]


def test_iou_and_centroid_distance() -> None:
    assert iou((0, 0, 0.2, 0.2), (0.1, 0, 0.3, 0.2)) == pytest.approx(1 / 3)
    assert iou((0, 0, 0.1, 0.1), (0.2, 0.2, 0.3, 0.3)) == 0.0
    assert iou((0.1, 0.1, 0.1, 0.3), (0.1, 0.1, 0.1, 0.3)) == 0.0  # no area
    assert centroid_distance((0, 0, 0.2, 0.2), (0.3, 0.4, 0.5, 0.6)) == pytest.approx(0.5)


def test_confirmed_after_min_hits_and_id_kept_while_moving_a_bit() -> None:
    tracker = IouTracker()
    assert tracker.update([(person(0.2, 0.3), 0.8)], 0.0) == []  # one sighting is not yet a person
    first = tracker.update([(person(0.21, 0.3), 0.9)], 0.5)
    assert ids(first) == [1]
    assert (first[0].first_seen, first[0].last_seen, first[0].hits, first[0].score) == (0.0, 0.5, 2, 0.9)
    for i in range(2, 8):
        (track,) = tracker.update([(person(0.2 + 0.01 * i, 0.3), 0.8)], i * 0.5)
        assert track.track_id == 1
    assert track.hits == 8
    assert track.box == pytest.approx(person(0.27, 0.3))


def test_a_newcomer_waiting_for_its_second_sighting_is_reported_until_confirmed_or_gone() -> None:
    tracker = IouTracker(max_missed_s=2.0)
    assert tracker.newcomer_since() is None
    tracker.update([(person(0.2, 0.3), 0.8)], 10.0)
    assert tracker.newcomer_since() == 10.0  # the camera looks again at its next frame
    tracker.update([(person(0.2, 0.3), 0.8), (person(0.6, 0.3), 0.8)], 10.1)
    assert tracker.newcomer_since() == 10.1  # the first is confirmed; the second waits now
    tracker.update([(person(0.2, 0.3), 0.8)], 11.0)
    assert tracker.newcomer_since() == 10.1  # missed once, not yet given up
    tracker.update([(person(0.2, 0.3), 0.8)], 12.2)  # the second was a one-frame blip: dropped
    assert tracker.newcomer_since() is None


def test_a_stride_with_no_overlap_is_matched_by_centroid_distance() -> None:
    tracker = IouTracker()
    tracker.update([(person(0.20, 0.3), 0.8)], 0.0)
    tracker.update([(person(0.27, 0.3), 0.8)], 0.5)  # 0.07 step: the boxes no longer overlap
    (track,) = tracker.update([(person(0.34, 0.3), 0.8)], 1.0)
    assert iou(person(0.27, 0.3), person(0.34, 0.3)) == 0.0
    assert (track.track_id, track.hits) == (1, 3)


def test_new_objects_and_far_jumps_get_new_ids() -> None:
    tracker = IouTracker(min_hits=1)
    assert ids(tracker.update([(person(0.1, 0.3), 0.8)], 0.0)) == [1]
    assert ids(tracker.update([(person(0.1, 0.3), 0.8), (person(0.7, 0.5), 0.7)], 0.5)) == [1, 2]
    # The first one vanishes; something appears 0.3 away: a different object, not a teleport.
    assert ids(tracker.update([(person(0.4, 0.3), 0.8), (person(0.7, 0.5), 0.7)], 1.0)) == [2, 3]


def test_dropped_after_max_missed_s_and_kept_before() -> None:
    tracker = IouTracker(max_missed_s=2.0)
    for now in (0.0, 0.5):
        tracker.update([(person(0.5, 0.5), 0.8)], now)
    assert ids(tracker.update([], 1.0)) == []
    assert ids(tracker.tracks()) == [1]  # missed, but still live
    assert ids(tracker.update([(person(0.5, 0.5), 0.8)], 2.5)) == [1]  # gone 2.0 s: kept
    assert tracker.update([], 5.0) == []
    assert tracker.tracks() == []  # gone 2.5 s: dropped
    tracker.update([(person(0.5, 0.5), 0.8)], 5.5)
    assert ids(tracker.update([(person(0.5, 0.5), 0.8)], 6.0)) == [2]


@pytest.mark.parametrize("min_hits", [1, 2, 3])
def test_min_hits(min_hits: int) -> None:
    tracker = IouTracker(min_hits=min_hits)
    seen = [bool(tracker.update([(person(0.3, 0.3), 0.8)], i * 0.5)) for i in range(4)]
    assert seen == [i + 1 >= min_hits for i in range(4)]


def test_unconfirmed_flicker_does_not_use_up_ids() -> None:
    tracker = IouTracker()
    tracker.update([(person(0.1, 0.1), 0.5)], 0.0)  # a one-frame false positive
    tracker.update([(person(0.6, 0.6), 0.8)], 3.0)
    assert ids(tracker.update([(person(0.6, 0.6), 0.8)], 3.5)) == [1]
    assert ids(tracker.tracks()) == [1]


def test_greedy_matching_gives_each_detection_its_best_overlap() -> None:
    tracker = IouTracker(min_hits=1)
    tracker.update([(person(0.30, 0.3), 0.8), (person(0.36, 0.3), 0.8)], 0.0)
    # Both move right by 0.02; each new box overlaps both tracks, but its own one best.
    tracks = tracker.update([(person(0.38, 0.3), 0.7), (person(0.32, 0.3), 0.9)], 0.5)
    assert {t.track_id: t.box[0] for t in tracks} == {1: pytest.approx(0.32), 2: pytest.approx(0.38)}


def test_two_people_passing_each_other_keep_their_ids() -> None:
    tracker = IouTracker(min_hits=1)
    for i in range(9):
        step = 0.04 * i
        tracks = tracker.update([(person(0.2 + step, 0.30), 0.8), (person(0.6 - step, 0.34), 0.8)], i * 0.5)
    left_to_right = next(t for t in tracks if t.track_id == 1)
    assert left_to_right.box[0] == pytest.approx(0.52)
    assert ids(tracks) == [1, 2]


def test_bad_boxes_and_settings_are_refused() -> None:
    tracker = IouTracker()
    with pytest.raises(ValueError, match="x1 <= x2"):
        tracker.update([((0.5, 0.5, 0.4, 0.6), 0.9)], 0.0)
    with pytest.raises(ValueError, match="4 numbers"):
        tracker.update([((0.5, 0.5, 0.6), 0.9)], 0.0)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="non-finite"):
        tracker.update([((0.5, float("nan"), 0.6, 0.7), 0.9)], 0.0)
    with pytest.raises(ValueError, match="min_hits"):
        IouTracker(min_hits=0)


@cache
def moving_blobs() -> tuple[tuple[float, list[tuple[Box, float]]], ...]:
    """Boxes of what moves in the real clip at 2 fps: foreground against the clip's median background.

    Not a person detector (groups merge, people split), which makes it a fair, noisy stand-in.
    """
    clip = cv2.VideoCapture(str(CLIP))
    grays = []
    while True:
        ok, frame = clip.read()
        if not ok:
            break
        grays.append(cv2.GaussianBlur(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), (5, 5), 0))
    clip.release()
    background = np.median(np.stack(grays), axis=0).astype(np.uint8)
    height, width = background.shape
    closing = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 15))
    runs = []
    for index in range(0, len(grays), 5):
        moving = (cv2.absdiff(grays[index], background) > 30).astype(np.uint8) * 255
        closed = cv2.morphologyEx(moving, cv2.MORPH_CLOSE, closing)
        count, _, stats, _ = cv2.connectedComponentsWithStats(closed)
        boxes = [
            ((x / width, y / height, (x + w) / width, (y + h) / height), 0.9)
            for x, y, w, h, area in stats[1:count].tolist()
            if area >= 150 and h >= 20
        ]
        runs.append((index / 10.0, boxes))
    return tuple(runs)


def run_over_clip(tracker: IouTracker) -> dict[int, list[Track]]:
    history: dict[int, list[Track]] = {}
    for now, boxes in moving_blobs():
        for track in tracker.update(boxes, now):
            history.setdefault(track.track_id, []).append(track)
    return history


def test_people_walking_in_the_real_clip_keep_their_ids() -> None:
    history = run_over_clip(IouTracker())
    iou_only = run_over_clip(IouTracker(max_centroid_dist=0.0))
    assert len(history) < len(iou_only)  # the centroid fallback bridges strides IoU cannot

    def travelled(tracks: list[Track]) -> float:
        return centroid_distance(tracks[0].box, tracks[-1].box)

    def duration(tracks: list[Track]) -> float:
        return tracks[-1].last_seen - tracks[0].first_seen

    long_walks = [t for t in history.values() if duration(t) >= 5.0 and travelled(t) > 0.15]
    assert len(long_walks) >= 3
