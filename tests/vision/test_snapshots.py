"""Snapshots on real frames: faces anonymised before disk, fail closed, strict ids, retention, threads."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import stat
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.errors import EdgeError
from edge.vision.snapshots import Snapshot, SnapshotRefused, SnapshotStore, blur_regions
from tests.conftest import REPO

CLIP = REPO / "tests" / "fixtures" / "vtest-cut.mp4"
# Where the first frame has people and texture: two walkers, the windows, a sign.
BOXES = [(250, 218, 285, 258), (500, 155, 530, 200), (330, 30, 570, 85), (405, 200, 447, 245)]
Box = tuple[float, float, float, float]


def read_frames(indices: Sequence[int]) -> list[np.ndarray]:
    clip = cv2.VideoCapture(str(CLIP))
    frames = []
    try:
        for index in range(max(indices) + 1):
            ok, frame = clip.read()
            assert ok, f"clip ended before frame {index}"
            if index in indices:
                frames.append(frame)
    finally:
        clip.release()
    return frames


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    got = read_frames([0, 40, 80, 120])
    assert all(f.shape == (576, 768, 3) and f.dtype == np.uint8 for f in got)
    return got


@pytest.fixture
def frame(frames: list[np.ndarray]) -> np.ndarray:
    return frames[0].copy()


def fixed_finder(frame: np.ndarray) -> list[Box]:
    return [(float(a), float(b), float(c), float(d)) for a, b, c, d in BOXES]


def grown(box: Sequence[float], shape: tuple[int, ...], margin: float = 0.25) -> tuple[int, int, int, int]:
    """Independent arithmetic for the grown, clipped pixel rectangle."""
    x1, y1, x2, y2 = box
    gx, gy = (x2 - x1) * margin, (y2 - y1) * margin
    return (
        max(0, math.floor(x1 - gx)),
        max(0, math.floor(y1 - gy)),
        min(shape[1], math.ceil(x2 + gx)),
        min(shape[0], math.ceil(y2 + gy)),
    )


def detail(patch: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- blur_regions ------------------------------------------------------------------------------


def test_blur_destroys_detail_inside_every_grown_box(frame: np.ndarray) -> None:
    original = frame.copy()
    out = blur_regions(frame, BOXES)
    assert np.array_equal(frame, original), "input must not be modified"
    for box in BOXES:
        left, top, right, bottom = grown(box, frame.shape)
        before, after = original[top:bottom, left:right], out[top:bottom, left:right]
        assert detail(before) > 500, "the chosen region must have detail to lose"
        assert detail(after) < 0.1 * detail(before)
        assert np.abs(before.astype(int) - after.astype(int)).mean() > 15
        # the margin strip is anonymised too, not just the inner box
        strip_before, strip_after = before[:, : int(box[0]) - left], after[:, : int(box[0]) - left]
        assert not np.array_equal(strip_before, strip_after)


def test_blur_leaves_everything_outside_the_grown_boxes_untouched(frame: np.ndarray) -> None:
    boxes = [*BOXES, (-30.0, -20.0, 40.0, 30.0), (740.0, 550.0, 800.0, 600.0), (100.0, 100.0, 100.0, 160.0)]
    out = blur_regions(frame, boxes)
    assert out.shape == frame.shape and out.dtype == np.uint8
    inside = np.zeros(frame.shape[:2], bool)
    for box in boxes:
        left, top, right, bottom = grown(box, frame.shape)
        inside[top:bottom, left:right] = True
    assert np.array_equal(out[~inside], frame[~inside])
    # boxes hanging off the corners are still anonymised where they overlap the image
    for left, top, right, bottom in (grown(boxes[4], frame.shape), grown(boxes[5], frame.shape)):
        assert not np.array_equal(out[top:bottom, left:right], frame[top:bottom, left:right])


def test_blur_handles_degenerate_outside_and_inverted_boxes(frame: np.ndarray) -> None:
    useless = [(100, 100, 100, 100), (900, 700, 1000, 800), (-50, -50, -10, -10), (5, 5, 5, 50)]
    assert np.array_equal(blur_regions(frame, useless, margin=0.0), frame)
    assert np.array_equal(blur_regions(frame, []), frame)
    inverted = blur_regions(frame, [(285, 258, 250, 218)])
    assert np.array_equal(inverted, blur_regions(frame, [(250, 218, 285, 258)]))
    tiny = blur_regions(frame, [(300, 300, 303, 302)], margin=0.0)
    assert not np.array_equal(tiny[300:302, 300:303], frame[300:302, 300:303])
    with pytest.raises(ValueError):
        blur_regions(frame, [(float("nan"), 0.0, 10.0, 10.0)])


# --- save: blur before disk, fail closed -----------------------------------------------------


def test_saved_jpeg_is_the_frame_with_faces_anonymised(tmp_path: Path, frame: np.ndarray) -> None:
    seen: list[np.ndarray] = []

    def finder(image: np.ndarray) -> list[Box]:
        seen.append(image.copy())
        return fixed_finder(image)

    store = SnapshotStore(tmp_path / "snaps", face_finder=finder)
    snap = store.save(frame, "cam-1", "fall detected")
    assert re.fullmatch(r"[0-9a-f]{32}", snap.snapshot_id)
    assert (snap.camera_id, snap.faces_blurred, snap.blurred) == ("cam-1", len(BOXES), True)
    assert np.array_equal(seen[0], frame), "the finder sees the original frame"
    path = store.path_for(snap.snapshot_id)
    assert path is not None and path.stat().st_size == snap.bytes
    saved = cv2.imread(str(path))
    assert saved is not None and saved.shape == frame.shape
    for box in BOXES:
        left, top, right, bottom = grown(box, frame.shape)
        assert detail(saved[top:bottom, left:right]) < 0.1 * detail(frame[top:bottom, left:right])
    # away from the boxes only JPEG noise differs
    assert np.abs(saved[350:, :].astype(int) - frame[350:, :].astype(int)).mean() < 4
    assert store.info(snap.snapshot_id) == snap
    assert store.list() == [snap]


@pytest.mark.parametrize("case", ["none", "raises", "nan", "three_coords", "not_boxes"])
def test_blur_on_without_a_working_finder_refuses_and_writes_nothing(
    tmp_path: Path, frame: np.ndarray, case: str
) -> None:
    def broken(image: np.ndarray) -> list[Box]:
        if case == "raises":
            raise RuntimeError("onnx session died")
        if case == "nan":
            return [(float("nan"), 1.0, 2.0, 3.0)]
        if case == "three_coords":
            return [(1.0, 2.0, 3.0)]  # type: ignore[list-item]
        return 42  # type: ignore[return-value]

    directory = tmp_path / "snaps"
    store = SnapshotStore(directory, face_finder=None if case == "none" else broken)
    with pytest.raises(SnapshotRefused) as refused:
        store.save(frame, "cam-1", "fall")
    assert isinstance(refused.value, EdgeError)
    assert files_in(directory) == []
    assert store.list() == []


def test_blur_off_saves_the_raw_frame(tmp_path: Path, frame: np.ndarray) -> None:
    def must_not_run(image: np.ndarray) -> list[Box]:
        raise AssertionError("finder called with blur off")

    store = SnapshotStore(tmp_path, face_finder=must_not_run, blur_faces=False, jpeg_quality=95)
    snap = store.save(frame, "cam-2", "manual")
    assert (snap.blurred, snap.faces_blurred) == (False, 0)
    path = store.path_for(snap.snapshot_id)
    assert path is not None
    saved = cv2.imread(str(path))
    assert saved is not None
    assert cv2.PSNR(saved, frame) > 35
    for box in BOXES:
        left, top, right, bottom = grown(box, frame.shape)
        assert detail(saved[top:bottom, left:right]) > 0.5 * detail(frame[top:bottom, left:right])
    sidecar = json.loads((tmp_path / f"{snap.snapshot_id}.json").read_text())
    assert sidecar["blurred"] is False and sidecar["reason"] == "manual"


def test_a_failed_sidecar_write_leaves_no_jpeg_behind(
    tmp_path: Path, frame: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SnapshotStore(tmp_path, face_finder=fixed_finder)
    real_write = store._write_atomically

    def disk_full_on_sidecar(target: Path, data: bytes) -> None:
        if target.suffix == ".json":
            raise OSError(28, "No space left on device")
        real_write(target, data)

    monkeypatch.setattr(store, "_write_atomically", disk_full_on_sidecar)
    with pytest.raises(OSError):
        store.save(frame, "cam", "x")
    assert files_in(tmp_path) == []


@pytest.mark.parametrize(
    "image",
    [np.zeros((0, 0, 3), np.uint8), np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32)],
)
def test_unusable_images_are_refused(tmp_path: Path, image: np.ndarray) -> None:
    store = SnapshotStore(tmp_path, face_finder=fixed_finder)
    with pytest.raises(SnapshotRefused):
        store.save(image, "cam", "x")
    assert files_in(tmp_path) == []


def test_logs_name_ids_and_counts_not_the_reason(
    tmp_path: Path, frame: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="edge.vision.snapshots")
    snap = SnapshotStore(tmp_path, face_finder=fixed_finder).save(frame, "cam-1", "Xiaoming fell")
    text = caplog.text
    assert snap.snapshot_id in text and "Xiaoming" not in text


# --- lookup --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        "../x",
        "%2e%2e%2f",
        "..%2f..%2fetc%2fpasswd",
        "/etc/passwd",
        "a\x00b",
        "0" * 31,
        "0" * 33,
        "A" * 32,
        "0" * 31 + "\n",
        "0" * 32 + "\n",
        "../" + "0" * 29,
        "",
        "g" * 32,
    ],
)
def test_path_for_rejects_anything_but_a_known_id(tmp_path: Path, frame: np.ndarray, bad: str) -> None:
    store = SnapshotStore(tmp_path, face_finder=fixed_finder)
    store.save(frame, "cam", "x")
    assert store.path_for(bad) is None
    assert store.info(bad) is None


def test_path_for_known_unknown_and_planted_symlink(tmp_path: Path, frame: np.ndarray) -> None:
    store = SnapshotStore(tmp_path / "snaps", face_finder=fixed_finder)
    snap = store.save(frame, "cam", "x")
    path = store.path_for(snap.snapshot_id)
    assert path is not None and path.parent == (tmp_path / "snaps").resolve()
    assert store.path_for(snap.snapshot_id.upper()) is None
    assert store.path_for("0123456789abcdef" * 2) is None
    planted = "f" * 32
    (tmp_path / "snaps" / f"{planted}.json").write_text(json.dumps({"camera_id": "c"}))
    (tmp_path / "snaps" / f"{planted}.jpg").symlink_to("/etc/passwd")
    assert store.path_for(planted) is None


def test_list_filters_by_camera_newest_first_with_limit(tmp_path: Path, frames: list[np.ndarray]) -> None:
    clock = Clock()
    store = SnapshotStore(tmp_path, face_finder=fixed_finder, clock=clock)
    saved: list[Snapshot] = []
    for i, image in enumerate(frames):
        clock.now += 10
        saved.append(store.save(image, f"cam-{i % 2}", "x"))
    assert store.list() == saved[::-1]
    assert store.list("cam-1") == [saved[3], saved[1]]
    assert store.list(limit=2) == [saved[3], saved[2]]
    assert store.list("nope") == [] and store.list(limit=0) == []


# --- retention -----------------------------------------------------------------------------------


def test_retention_by_count_keeps_the_newest(tmp_path: Path, frame: np.ndarray) -> None:
    clock = Clock()
    store = SnapshotStore(tmp_path, face_finder=fixed_finder, max_count=3, clock=clock)
    ids = []
    for _ in range(5):
        clock.now += 1
        ids.append(store.save(frame, "cam", "x").snapshot_id)
    assert [s.snapshot_id for s in store.list()] == ids[:1:-1]
    assert store.path_for(ids[0]) is None and store.path_for(ids[1]) is None
    assert len(files_in(tmp_path)) == 6
    assert store.prune() == 0


def test_retention_by_bytes_removes_oldest_and_refuses_oversize(tmp_path: Path, frame: np.ndarray) -> None:
    clock = Clock()
    probe = SnapshotStore(tmp_path / "probe", face_finder=fixed_finder)
    size = probe.save(frame, "cam", "x").bytes
    store = SnapshotStore(
        tmp_path / "s", face_finder=fixed_finder, max_bytes=2 * size + size // 2, clock=clock
    )
    ids = []
    for _ in range(4):
        clock.now += 1
        ids.append(store.save(frame, "cam", "x").snapshot_id)
    assert [s.snapshot_id for s in store.list()] == [ids[3], ids[2]]
    small = SnapshotStore(tmp_path / "small", face_finder=fixed_finder, max_bytes=size // 2)
    with pytest.raises(SnapshotRefused):
        small.save(frame, "cam", "x")
    assert files_in(tmp_path / "small") == []


def test_retention_by_age_uses_the_injected_clock(tmp_path: Path, frame: np.ndarray) -> None:
    clock = Clock()
    store = SnapshotStore(tmp_path, face_finder=fixed_finder, max_age_s=3600, clock=clock)
    old = store.save(frame, "cam", "x")
    clock.now += 1800
    young = store.save(frame, "cam", "x")
    assert store.prune() == 0
    clock.now += 1801
    assert store.prune() == 1
    assert store.list() == [young] and store.info(old.snapshot_id) is None
    clock.now += 1800
    assert store.prune() == 1 and files_in(tmp_path) == []


def test_prune_cleans_stray_temp_files_and_orphans_only_when_old(tmp_path: Path, frame: np.ndarray) -> None:
    store = SnapshotStore(tmp_path, face_finder=fixed_finder)
    keep = store.save(frame, "cam", "x")
    an_hour_ago = time.time() - 3600
    for name in (".tmp-old", "ab" * 16 + ".jpg"):
        (tmp_path / name).write_bytes(b"partial")
        os.utime(tmp_path / name, (an_hour_ago, an_hour_ago))
    (tmp_path / ".tmp-fresh").write_bytes(b"being written")
    assert store.prune() == 0
    assert files_in(tmp_path) == sorted([".tmp-fresh", f"{keep.snapshot_id}.jpg", f"{keep.snapshot_id}.json"])


# --- permissions and threads ---------------------------------------------------------------------


def test_directory_and_files_are_private(tmp_path: Path, frame: np.ndarray) -> None:
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    os.chmod(loose, 0o755)
    store = SnapshotStore(loose, face_finder=fixed_finder)
    snap = store.save(frame, "cam", "x")
    assert stat.S_IMODE(loose.stat().st_mode) == 0o700
    for suffix in (".jpg", ".json"):
        assert stat.S_IMODE((loose / f"{snap.snapshot_id}{suffix}").stat().st_mode) == 0o600
    fresh = tmp_path / "a" / "b"
    SnapshotStore(fresh, face_finder=None)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700


def test_concurrent_saves_from_four_threads_lose_nothing(tmp_path: Path, frames: list[np.ndarray]) -> None:
    store = SnapshotStore(tmp_path, face_finder=fixed_finder)
    results: list[Snapshot] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def worker(n: int) -> None:
        try:
            start.wait()
            for i in range(5):
                results.append(store.save(frames[(n + i) % len(frames)], f"cam-{n}", "x"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert len({s.snapshot_id for s in results}) == 20
    assert sorted(s.snapshot_id for s in store.list(limit=100)) == sorted(s.snapshot_id for s in results)
    assert len(files_in(tmp_path)) == 40 and not any(n.startswith(".tmp-") for n in files_in(tmp_path))
    for snap in results:
        path = store.path_for(snap.snapshot_id)
        assert path is not None
        image = cv2.imread(str(path))
        assert image is not None and image.shape == (576, 768, 3)
        assert store.info(snap.snapshot_id) == snap
    assert all(len(store.list(f"cam-{n}")) == 5 for n in range(4))
