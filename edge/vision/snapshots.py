"""Safety snapshots on local disk: faces blurred before writing, opaque ids, bounded retention."""

from __future__ import annotations

import builtins
import contextlib
import json
import logging
import math
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from edge.errors import DataDirUnusable, EdgeError

if TYPE_CHECKING:
    from edge.disk_guard import DiskGuard

log = logging.getLogger(__name__)

FaceFinder = Callable[[np.ndarray], Sequence[tuple[float, float, float, float]]]

_ID = re.compile(r"[0-9a-f]{32}")
_TMP_PREFIX = ".tmp-"
_STRAY_AGE_S = 60.0
_GRID = 8  # a face becomes at most 8x8 averaged cells: far too coarse to keep identity
_MARGIN = 0.25  # detectors box the inner face; hair, ears and chin identify too
_TEXT_MAX = 200  # camera ids and reasons are labels, not documents
_Region = tuple[int, int, int, int]


class SnapshotRefused(EdgeError):
    """A snapshot was not written because it could not be made safe to keep."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"snapshot refused: {reason}")


class SnapshotDiskLow(SnapshotRefused):
    """Degraded mode: no new snapshots while disk space is low (logged once per episode)."""

    def __init__(self) -> None:
        super().__init__("disk space low")


@dataclass(frozen=True)
class Snapshot:
    """One stored snapshot; snapshot_id is the only key that finds it again."""

    snapshot_id: str
    camera_id: str
    taken_at: float
    faces_blurred: int
    blurred: bool
    bytes: int
    reason: str = ""


def _grown_region(box: Sequence[float], shape: tuple[int, ...], margin: float) -> _Region | None:
    """The box grown by margin and clipped to the image, in whole pixels; None if nothing is left."""
    x1, y1, x2, y2 = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise ValueError("face box has a non-finite coordinate")
    x1, x2 = min(x1, x2), max(x1, x2)
    y1, y2 = min(y1, y2), max(y1, y2)
    grow_x, grow_y = (x2 - x1) * margin, (y2 - y1) * margin
    height, width = shape[0], shape[1]
    left, top = max(0, math.floor(x1 - grow_x)), max(0, math.floor(y1 - grow_y))
    right, bottom = min(width, math.ceil(x2 + grow_x)), min(height, math.ceil(y2 + grow_y))
    if right <= left or bottom <= top:
        return None
    return left, top, right, bottom


def _anonymise(patch: np.ndarray) -> np.ndarray:
    """Average the patch into a coarse grid, then blur the block edges away."""
    height, width = patch.shape[:2]
    # tiny patches still get cells of at least 2 px, so every pixel is averaged with a neighbour
    cells_x, cells_y = max(1, min(_GRID, width // 2)), max(1, min(_GRID, height // 2))
    coarse = cv2.resize(patch, (cells_x, cells_y), interpolation=cv2.INTER_AREA)
    blocky = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_NEAREST)
    cell = max(width // cells_x, height // cells_y)
    kernel = (2 * cell) | 1  # Gaussian kernels must be odd
    return cv2.GaussianBlur(blocky, (kernel, kernel), cell / 2)


def blur_regions(image: np.ndarray, boxes: Sequence[Sequence[float]], margin: float = _MARGIN) -> np.ndarray:
    """Return a copy of image with every box (grown by margin, clipped) irreversibly anonymised."""
    out = image.copy()
    for box in boxes:
        region = _grown_region(box, image.shape, margin)
        if region is None:
            continue
        left, top, right, bottom = region
        out[top:bottom, left:right] = _anonymise(out[top:bottom, left:right])
    return out


def anonymise_faces(image: np.ndarray, face_finder: FaceFinder | None) -> tuple[np.ndarray, int]:
    """A copy of image with faces anonymised and how many; fails closed (SnapshotRefused) on any doubt."""
    if face_finder is None:
        raise SnapshotRefused("face blurring is on but no face finder is available")
    try:
        boxes = list(face_finder(image))
        faces = sum(_grown_region(box, image.shape, _MARGIN) is not None for box in boxes)
        return blur_regions(image, boxes), faces
    except Exception as exc:
        log.warning("face finding failed (%s); image not kept", type(exc).__name__)
        raise SnapshotRefused(f"face finding failed: {type(exc).__name__}") from exc


def encode_jpeg(image: np.ndarray, quality: int = 85) -> bytes:
    """The image as JPEG bytes (SnapshotRefused if OpenCV cannot encode it)."""
    try:
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    except cv2.error as exc:
        raise SnapshotRefused("JPEG encoding failed") from exc
    if not ok:
        raise SnapshotRefused("JPEG encoding failed")
    return bytes(encoded.tobytes())


class SnapshotStore:
    """A directory of JPEG snapshots with JSON sidecars, looked up only by opaque id."""

    def __init__(
        self,
        directory: Path,
        *,
        face_finder: FaceFinder | None,
        blur_faces: bool = True,
        max_count: int = 500,
        max_bytes: int = 200 * 1024 * 1024,
        max_age_s: float = 7 * 86400,
        jpeg_quality: int = 85,
        clock: Callable[[], float] = time.time,
        guard: DiskGuard | None = None,
    ) -> None:
        if max_count < 1 or max_bytes < 1 or max_age_s <= 0 or not 1 <= jpeg_quality <= 100:
            raise ValueError("snapshot limits must be positive and jpeg_quality within 1..100")
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            directory.chmod(0o700)  # an existing, looser directory would expose children's images
        except OSError as exc:
            raise DataDirUnusable(str(directory), str(exc)) from exc
        self.directory = directory.resolve()
        self._face_finder = face_finder
        self._blur_faces = blur_faces
        self._max_count = max_count
        self._max_bytes = max_bytes
        self._max_age_s = max_age_s
        self._jpeg_quality = jpeg_quality
        self._clock = clock
        self._lock = threading.RLock()
        self._guard = guard
        self._disk_low = False  # inside a low-disk episode (logged once per episode)

    def save(self, image: np.ndarray, camera_id: str, reason: str) -> Snapshot:
        """Blur faces (or refuse), then write the JPEG and its sidecar atomically."""
        if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3):
            raise SnapshotRefused("image is not a BGR uint8 array")
        if image.shape[2] != 3 or image.size == 0:
            raise SnapshotRefused("image is empty or not 3-channel")
        self._check_disk()
        faces = 0
        if self._blur_faces:
            image, faces = anonymise_faces(image, self._face_finder)
        data = encode_jpeg(image, self._jpeg_quality)
        if len(data) > self._max_bytes:
            raise SnapshotRefused("a single snapshot exceeds max_bytes")
        snapshot_id = secrets.token_hex(16)
        meta = {"camera_id": camera_id[:_TEXT_MAX], "reason": reason[:_TEXT_MAX], "taken_at": self._clock()}
        meta |= {"faces_blurred": faces, "blurred": self._blur_faces}
        with self._lock:
            # JPEG first, sidecar last: a snapshot exists only once its sidecar does
            jpeg = self.directory / f"{snapshot_id}.jpg"
            self._write_atomically(jpeg, data)
            try:
                self._write_atomically(self.directory / f"{snapshot_id}.json", json.dumps(meta).encode())
            except BaseException:
                jpeg.unlink(missing_ok=True)
                raise
            log.info("snapshot %s saved (camera %s, %d faces blurred)", snapshot_id, camera_id, faces)
            self.prune()
        return _snapshot(snapshot_id, meta, len(data))

    def _check_disk(self) -> None:
        """Degraded mode: refuse new snapshots while disk space is low (snapshots go first)."""
        if self._guard is None:
            return
        if self._guard.check() == "ok":
            if self._disk_low:
                log.info("disk space is back: snapshots are kept again")
            self._disk_low = False
            return
        self._guard.count_drop("snapshots")
        if not self._disk_low:
            log.warning("disk space low: new snapshots are not kept until space is freed")
        self._disk_low = True
        raise SnapshotDiskLow()

    def drop_oldest(self, count: int = 1) -> int:
        """Delete the count oldest snapshots whatever the limits (disk space low); return how many."""
        with self._lock:
            oldest_first = sorted(self._scan(), key=lambda s: (s.taken_at, s.snapshot_id))[: max(0, count)]
            for snap in oldest_first:
                (self.directory / f"{snap.snapshot_id}.json").unlink(missing_ok=True)
                (self.directory / f"{snap.snapshot_id}.jpg").unlink(missing_ok=True)
            return len(oldest_first)

    def _write_atomically(self, target: Path, data: bytes) -> None:
        """Write to a private temp file in the same directory, fsync, then rename over target."""
        tmp = self.directory / f"{_TMP_PREFIX}{secrets.token_hex(8)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # make the rename itself survive a power cut
        finally:
            os.close(dir_fd)

    def path_for(self, snapshot_id: str) -> Path | None:
        """The JPEG path for a well-formed, known id, always inside the directory; else None."""
        if not isinstance(snapshot_id, str) or not _ID.fullmatch(snapshot_id):
            return None
        try:
            path = (self.directory / f"{snapshot_id}.jpg").resolve(strict=True)
        except OSError:
            return None
        # resolve() exposes a planted symlink; the sidecar marks a complete snapshot
        inside = path.parent == self.directory and path.is_file()
        return path if inside and (self.directory / f"{snapshot_id}.json").is_file() else None

    def info(self, snapshot_id: str) -> Snapshot | None:
        """The stored snapshot with this id, or None."""
        return None if self.path_for(snapshot_id) is None else self._load(snapshot_id)

    def list(self, camera_id: str | None = None, limit: int = 50) -> builtins.list[Snapshot]:
        """Stored snapshots, newest first, optionally for one camera only."""
        found = [s for s in self._scan() if camera_id is None or s.camera_id == camera_id]
        found.sort(key=lambda s: (s.taken_at, s.snapshot_id), reverse=True)
        return found[: max(0, limit)]

    def prune(self) -> int:
        """Delete by age, then count, then total bytes (oldest first); return how many went."""
        with self._lock:
            if not self.directory.is_dir():  # removed by hand to free space: nothing to prune
                return 0
            self._remove_strays()
            now = self._clock()
            oldest_first = sorted(self._scan(), key=lambda s: (s.taken_at, s.snapshot_id))
            # every rule removes a prefix of the oldest-first list, so one cut index suffices
            cut = sum(now - s.taken_at > self._max_age_s for s in oldest_first)
            cut = max(cut, len(oldest_first) - self._max_count)
            total = sum(s.bytes for s in oldest_first[cut:])
            while cut < len(oldest_first) and total > self._max_bytes:
                total -= oldest_first[cut].bytes
                cut += 1
            doomed = oldest_first[:cut]
            for snap in doomed:
                # sidecar first: a half-deleted snapshot is then an orphan JPEG, cleaned as a stray
                (self.directory / f"{snap.snapshot_id}.json").unlink(missing_ok=True)
                (self.directory / f"{snap.snapshot_id}.jpg").unlink(missing_ok=True)
            if doomed:
                log.info("pruned %d snapshots, %d kept", cut, len(oldest_first) - cut)
            return cut

    def _remove_strays(self) -> None:
        """Delete temp files and orphan JPEGs left by a crash, once they are a minute old."""
        # wall time, not the injected clock: file mtimes are always wall time
        cutoff = time.time() - _STRAY_AGE_S
        for path in self.directory.iterdir():
            orphan = path.suffix == ".jpg" and not path.with_suffix(".json").exists()
            with contextlib.suppress(FileNotFoundError):
                if (orphan or path.name.startswith(_TMP_PREFIX)) and path.lstat().st_mtime < cutoff:
                    path.unlink()
                    log.info("removed stray snapshot file %s", path.name)

    def _scan(self) -> builtins.list[Snapshot]:
        """Every complete snapshot in the directory."""
        ids = (p.stem for p in self.directory.glob("*.json") if _ID.fullmatch(p.stem))
        return [s for s in map(self._load, ids) if s is not None]

    def _load(self, snapshot_id: str) -> Snapshot | None:
        """Read one sidecar and the JPEG size; None if either is missing or unreadable."""
        try:
            meta = json.loads((self.directory / f"{snapshot_id}.json").read_bytes())
            size = (self.directory / f"{snapshot_id}.jpg").stat().st_size
            return _snapshot(snapshot_id, meta, size)
        except FileNotFoundError:
            return None  # pruned between listing and reading
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("snapshot %s has an unreadable sidecar; ignored", snapshot_id)
            return None


def _snapshot(snapshot_id: str, meta: dict[str, Any], size: int) -> Snapshot:
    """Build a Snapshot from sidecar fields."""
    return Snapshot(
        snapshot_id,
        str(meta["camera_id"]),
        float(meta["taken_at"]),
        int(meta["faces_blurred"]),
        bool(meta["blurred"]),
        size,
        str(meta["reason"]),
    )
