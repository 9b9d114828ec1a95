"""Zones, anchors, count smoothing, line crossings with hysteresis, dwell times."""

from __future__ import annotations

import pytest

from edge.vision.tracker import Box, Track
from edge.vision.zones import CountSmoother, LineCounter, Zone, ZoneDwell, ZonePresence, anchor

# An L-shaped room corner: concave at (0.5, 0.5).
L_SHAPE = [(0.1, 0.1), (0.5, 0.1), (0.5, 0.5), (0.9, 0.5), (0.9, 0.9), (0.1, 0.9)]


def standing_at(track_id: int, x: float, y: float, now: float = 0.0) -> Track:
    """A confirmed track whose feet (bottom centre) are at (x, y)."""
    box: Box = (x - 0.03, y - 0.2, x + 0.03, y)
    return Track(track_id, box, 0.9, 0.0, now, 5)


def test_convex_zone_contains() -> None:
    zone = Zone("door", [(0.2, 0.2), (0.6, 0.2), (0.6, 0.8), (0.2, 0.8)])
    assert zone.contains(0.4, 0.5)
    assert not zone.contains(0.1, 0.5)
    assert not zone.contains(0.4, 0.9)
    assert zone.contains(0.2, 0.5)  # on an edge
    assert zone.contains(0.6, 0.8)  # on a corner


def test_concave_zone_contains() -> None:
    zone = Zone("corner", L_SHAPE)
    assert zone.contains(0.3, 0.3)  # in the upright bar
    assert zone.contains(0.7, 0.7)  # in the foot
    assert not zone.contains(0.7, 0.3)  # the notch: inside the bounding box, outside the room
    assert zone.contains(0.5, 0.3)  # on the inner edge
    assert not zone.contains(0.95, 0.7)
    assert zone.contains(0.3, 0.5)  # level with the concave vertex


def test_zone_is_immutable_and_stores_a_tuple() -> None:
    points = [(0.1, 0.1), (0.5, 0.1), (0.3, 0.4)]
    zone = Zone("z", points)
    points.append((0.9, 0.9))
    assert zone.polygon == ((0.1, 0.1), (0.5, 0.1), (0.3, 0.4))


@pytest.mark.parametrize(
    ("polygon", "message"),
    [
        ([(0.1, 0.1), (0.5, 0.5)], "at least 3 points, got 2"),
        ([(0.1, 0.1), (1.2, 0.1), (0.5, 0.5)], r"must be in 0\.\.1"),
        ([(0.1, -0.1), (0.5, 0.1), (0.5, 0.5)], r"must be in 0\.\.1"),
        ([(0.1, 0.1), (0.3, 0.3), (0.5, 0.5)], "no area"),
        ([(0.1, 0.1, 0.2), (0.3, 0.1), (0.5, 0.5)], "a point is"),
    ],
)
def test_bad_zones_are_refused(polygon: list[tuple[float, ...]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Zone("bad", polygon)  # type: ignore[arg-type]


def test_anchor_modes() -> None:
    box = (0.2, 0.1, 0.4, 0.5)
    assert anchor(box) == pytest.approx((0.3, 0.5))
    assert anchor(box, "center") == pytest.approx((0.3, 0.3))
    with pytest.raises(ValueError, match="anchor mode"):
        anchor(box, "top")  # type: ignore[arg-type]


def test_smoother_publishes_first_sample_then_only_changes() -> None:
    smoother = CountSmoother(window_s=4.0)
    published = [smoother.update(count, i * 0.5) for i, count in enumerate([3, 3, 3, 3])]
    assert published == [3, None, None, None]


def test_smoother_suppresses_a_one_frame_blip() -> None:
    smoother = CountSmoother(window_s=4.0)
    counts = [2, 3, 2, 2, 2, 1, 2, 2, 2, 2, 4, 2, 2]
    published = [smoother.update(count, i * 0.5) for i, count in enumerate(counts)]
    assert published == [2] + [None] * (len(counts) - 1)


def test_smoother_follows_a_real_change_within_the_window() -> None:
    smoother = CountSmoother(window_s=4.0)
    published = [(i * 0.5, smoother.update(count, i * 0.5)) for i, count in enumerate([2] * 8 + [5] * 8)]
    changes = [(now, value) for now, value in published if value is not None]
    # 5 once it is the majority of the last 4 s (8 samples), and never a count in between.
    assert changes == [(0.0, 2), (6.0, 5)]


def test_smoother_rounds_an_even_median_down() -> None:
    smoother = CountSmoother(window_s=4.0)
    assert smoother.update(1, 0.0) == 1
    assert smoother.update(2, 0.5) is None  # median 1.5 -> 1
    assert smoother.update(2, 1.0) == 2
    with pytest.raises(ValueError, match="count"):
        smoother.update(-1, 1.5)


def test_smoother_forgets_samples_older_than_the_window() -> None:
    smoother = CountSmoother(window_s=4.0)
    smoother.update(7, 0.0)
    assert smoother.update(0, 10.0) == 0  # the old 7 left the window long ago


def test_line_counts_in_and_out_by_side() -> None:
    # a -> b points right along y = 0.5, so its right-hand side is lower in the picture: "in" = downwards.
    line = LineCounter("door", (0.2, 0.5), (0.8, 0.5))
    assert line.update([standing_at(1, 0.5, 0.40)], 0.0) == (0, 0)
    assert line.update([standing_at(1, 0.5, 0.60)], 0.5) == (1, 0)
    assert line.update([standing_at(1, 0.5, 0.70)], 1.0) == (0, 0)  # stays in: counted once
    assert line.update([standing_at(1, 0.5, 0.40), standing_at(2, 0.3, 0.4)], 1.5) == (0, 1)
    assert line.update([standing_at(2, 0.3, 0.55)], 2.0) == (1, 0)
    assert line.totals == (2, 1)


def test_line_ignores_jitter_on_the_line() -> None:
    line = LineCounter("door", (0.2, 0.5), (0.8, 0.5))
    line.update([standing_at(1, 0.5, 0.45)], 0.0)
    wobble = [0.505, 0.495, 0.508, 0.492, 0.509, 0.491, 0.5]
    counts = [line.update([standing_at(1, 0.5, y)], 0.5 + i * 0.5) for i, y in enumerate(wobble)]
    assert counts == [(0, 0)] * len(wobble)
    assert line.update([standing_at(1, 0.5, 0.52)], 5.0) == (1, 0)  # clearly across at last
    assert line.update([standing_at(1, 0.5, 0.495)], 5.5) == (0, 0)  # back into the band: no "out"
    assert line.update([standing_at(1, 0.5, 0.52)], 6.0) == (0, 0)  # and no second "in"
    assert line.totals == (1, 0)


def test_crossing_beside_the_segment_does_not_count() -> None:
    line = LineCounter("door", (0.4, 0.5), (0.6, 0.5))
    line.update([standing_at(1, 0.2, 0.4)], 0.0)
    assert line.update([standing_at(1, 0.2, 0.6)], 0.5) == (0, 0)  # passed left of a
    assert line.update([standing_at(1, 0.7, 0.4)], 1.0) == (0, 1)  # diagonal, through x = 0.45


def test_line_across_a_person_who_first_appears_on_the_line_needs_a_side_first() -> None:
    line = LineCounter("door", (0.2, 0.5), (0.8, 0.5))
    assert line.update([standing_at(1, 0.5, 0.5)], 0.0) == (0, 0)
    assert line.update([standing_at(1, 0.5, 0.6)], 0.5) == (0, 0)  # unknown where it came from


def test_bad_lines_are_refused() -> None:
    with pytest.raises(ValueError, match=r"0\.\.1"):
        LineCounter("door", (0.2, 0.5), (1.5, 0.5))
    with pytest.raises(ValueError, match="apart"):
        LineCounter("door", (0.5, 0.5), (0.5, 0.505))


def test_dwell_times_per_zone_and_track() -> None:
    dwell = ZoneDwell(grace_s=1.0)
    stage = Zone("stage", [(0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)])
    door = Zone("door", [(0.4, 0.0), (1.0, 0.0), (1.0, 1.0), (0.4, 1.0)])  # overlaps the stage
    zones = [stage, door]
    assert dwell.update([standing_at(1, 0.2, 0.5)], zones, 0.0) == [ZonePresence("stage", 1, 0.0, 0.0)]
    assert dwell.update([standing_at(1, 0.45, 0.5), standing_at(2, 0.8, 0.5)], zones, 0.5) == [
        ZonePresence("door", 1, 0.5, 0.0),
        ZonePresence("door", 2, 0.5, 0.0),
        ZonePresence("stage", 1, 0.0, 0.5),
    ]
    # Track 1 steps off the stage: still reported until grace_s has passed.
    assert dwell.update([standing_at(1, 0.8, 0.5), standing_at(2, 0.8, 0.5)], zones, 1.0) == [
        ZonePresence("door", 1, 0.5, 0.5),
        ZonePresence("door", 2, 0.5, 0.5),
        ZonePresence("stage", 1, 0.0, 1.0),
    ]
    assert dwell.update([standing_at(2, 0.8, 0.5)], zones, 2.0) == [
        ZonePresence("door", 1, 0.5, 1.5),  # missed for 1 s: kept
        ZonePresence("door", 2, 0.5, 1.5),
    ]
    assert dwell.update([standing_at(2, 0.8, 0.5)], zones, 2.5) == [ZonePresence("door", 2, 0.5, 2.0)]
    # Track 1 comes back after more than grace_s: a new visit.
    assert dwell.update([standing_at(1, 0.8, 0.5), standing_at(2, 0.8, 0.5)], zones, 3.0) == [
        ZonePresence("door", 1, 3.0, 0.0),
        ZonePresence("door", 2, 0.5, 2.5),
    ]


def test_dwell_forgets_zones_no_longer_given() -> None:
    dwell = ZoneDwell()
    zone = Zone("corner", L_SHAPE)
    inside = standing_at(3, 0.3, 0.3)
    dwell.update([inside], [zone], 0.0)
    assert dwell.update([inside], [], 0.5) == []
    assert dwell.update([inside], [zone], 1.0) == [ZonePresence("corner", 3, 1.0, 0.0)]


def test_a_missed_detection_does_not_restart_the_loitering_clock() -> None:
    dwell = ZoneDwell(grace_s=2.0)
    zone = Zone("corner", L_SHAPE)
    inside, in_the_notch = standing_at(7, 0.3, 0.3), standing_at(7, 0.7, 0.3)
    dwell.update([inside], [zone], 0.0)
    assert dwell.update([], [zone], 1.0) == [ZonePresence("corner", 7, 0.0, 1.0)]  # detector missed it
    assert dwell.update([inside], [zone], 2.0) == [ZonePresence("corner", 7, 0.0, 2.0)]
    assert dwell.update([in_the_notch], [zone], 3.5) == [ZonePresence("corner", 7, 0.0, 3.5)]  # grace
    assert dwell.update([in_the_notch], [zone], 4.5) == []  # outside for 2.5 s: left
    assert dwell.update([inside], [zone], 6.0) == [ZonePresence("corner", 7, 6.0, 0.0)]  # a new visit
