"""Config for cameras and on-box vision: models, per-camera rates, zones, lines, privacy."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import Field, field_validator, model_validator

from edge.camera_urls import parse_camera_url
from edge.config_base import Identifier, SecretSource, StrictModel, located

# A checkout keeps its models next to the package; scripts/install copies them to /opt/edge/models
# (the wheel in /opt/edge/venv has no models/ beside it).
_CHECKOUT_MODELS = Path(__file__).resolve().parent.parent / "models"
INSTALLED_MODELS = Path("/opt/edge/models")
REPO_MODELS = _CHECKOUT_MODELS if _CHECKOUT_MODELS.is_dir() else INSTALLED_MODELS

Point = tuple[float, float]


MIN_LINE_LENGTH = 0.03  # relative; the line counter needs room for its jitter margin on both sides


def _area(polygon: list[Point]) -> float:
    """Unsigned area (shoelace); 0 for collinear points."""
    total = 0.0
    for (x1, y1), (x2, y2) in zip(polygon, polygon[1:] + polygon[:1], strict=True):
        total += x1 * y2 - x2 * y1
    return abs(total) / 2


def _check_polygon(polygon: list[Point]) -> list[Point]:
    for point in polygon:
        _relative(point)
    if _area(polygon) < 1e-6:
        raise ValueError("the polygon has no area (its points are on one line)")
    return polygon


def _relative(point: Point) -> Point:
    x, y = point
    if not (math.isfinite(x) and math.isfinite(y) and 0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
        raise ValueError(f"point {list(point)} must be relative coordinates between 0 and 1")
    return point


class PrivacyConfig(StrictModel):
    """What may be kept of what the cameras see (faces of minors are sensitive data)."""

    blur_faces: bool = Field(
        True, description="Blur every face in a snapshot before it is written; turning this off "
                          "needs a documented legal basis.")
    blur_face_score: float = Field(
        0.25, gt=0, lt=1, description="Face score above which a region is blurred; lower than the "
                                      "counting threshold on purpose: when unsure, blur.")
    snapshots: bool = Field(True, description="Keep a (blurred) snapshot for camera events.")
    snapshot_max_count: int = Field(500, ge=1, description="Snapshots kept at most (oldest go first).")
    snapshot_max_mb: float = Field(200.0, gt=0, description="Disk space for snapshots, in MiB.")
    snapshot_max_age_days: float = Field(7.0, gt=0, description="Snapshots older than this are deleted.")


class VisionConfig(StrictModel):
    """The models and how much of the box they may use."""

    models_dir: Path = Field(REPO_MODELS, description="Directory with the .onnx files and their cards.")
    person_model: str = Field("nanodet.yaml", description="Card (in models_dir) of the person detector.")
    face_model: str = Field("blazeface-full-range.yaml",
                            description="Card (in models_dir) of the face detector, used for blurring.")
    person_score: float | None = Field(None, gt=0, lt=1,
                                       description="Person score threshold; the card's when unset.")
    threads: int = Field(1, ge=1, le=16, description="ONNX Runtime threads per inference call.")
    workers: int = Field(2, ge=1, le=16,
                         description="Inference calls running at once, shared by all cameras.")
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig, description="Snapshots and blurring.")


class ZoneConfig(StrictModel):
    """An area of the image (polygon in relative coordinates) counted on its own."""

    id: Identifier = Field(description="Zone id, unique within the camera, e.g. 'door'.")
    polygon: list[Point] = Field(min_length=3, description="Corners [[x, y], ...] with 0..1 coordinates.")
    anchor: Literal["bottom_center", "center"] = Field(
        "bottom_center", description="Which point of a person's box decides the zone: feet or centre.")

    _points = field_validator("polygon")(_check_polygon)


class LineConfig(StrictModel):
    """A doorway line: tracks crossing it from left to right of a->b count as 'in'."""

    id: Identifier = Field(description="Line id, unique within the camera.")
    a: Point = Field(description="Start [x, y], relative.")
    b: Point = Field(description="End [x, y], relative.")

    _points = field_validator("a", "b")(lambda v: _relative(v))

    @model_validator(mode="after")
    def _long_enough(self) -> LineConfig:
        if math.dist(self.a, self.b) < MIN_LINE_LENGTH:
            raise located(f"a and b must be at least {MIN_LINE_LENGTH} apart", "b")
        return self


class MotionConfig(StrictModel):
    """The motion gate: skip inference while nothing moves."""

    enabled: bool = Field(True, description="Infer only on motion (and on periodic re-checks).")
    recheck_s: float = Field(10.0, gt=0, description="Infer at least this often, for people sitting still.")
    min_changed_fraction: float = Field(0.003, gt=0, lt=1,
                                        description="Share of (downscaled) pixels that must change.")


class TamperConfig(StrictModel):
    """Lens covered, severe blur or a moved view, compared with a learned reference frame."""

    enabled: bool = Field(True, description="Watch this camera for tampering.")
    hold_s: float = Field(10.0, gt=0, description="A condition must last this long to be raised or cleared.")


class CameraConfig(SecretSource):
    """One camera: where its frames come from and what to count in them."""

    id: Identifier = Field(description="Camera id used in topics and events.")
    name: str = Field("", description="Human name shown on the console.")
    room_id: Identifier = Field(description="Room this camera watches (one of rooms[].id).")
    url: str = Field(description="rtsp://, http(s):// (MJPEG), /dev/videoN or v4l2:N, or a file path "
                                 "(file:PATH), which loops: for demos.")
    username: str | None = Field(None, description="User for the camera; the password comes from "
                                                   "password_env or password_file.")
    enabled: bool = Field(True, description="Set false to keep the entry but not open the camera.")
    detect_fps: float = Field(2.0, gt=0, le=30, description="Frames per second given to the detector.")
    open_timeout_s: float = Field(10.0, gt=0, le=120, description="Give up opening the stream after this.")
    read_timeout_s: float = Field(10.0, gt=0, le=120, description="A stream silent this long is offline.")
    smoothing_s: float = Field(4.0, ge=0, le=120,
                               description="Counts are the median over this window (0: raw).")
    zones: list[ZoneConfig] = Field(default_factory=list, description="Areas counted on their own.")
    ignore: list[list[Point]] = Field(
        default_factory=list,
        description="Polygons (relative) where detections are dropped: a poster, a coat stand, a mirror.")
    lines: list[LineConfig] = Field(default_factory=list, description="Doorway lines for in/out counts.")
    motion: MotionConfig = Field(default_factory=MotionConfig, description="Motion gate.")
    tamper: TamperConfig = Field(default_factory=TamperConfig, description="Tamper detection.")

    @field_validator("ignore")
    @classmethod
    def _ignore_polygons(cls, value: list[list[Point]]) -> list[list[Point]]:
        for polygon in value:
            if len(polygon) < 3:
                raise ValueError("each ignore polygon needs at least 3 points")
            _check_polygon(polygon)
        return value

    @field_validator("url")
    @classmethod
    def _url_without_secret(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.password:
            raise ValueError("no password in the URL; use username with password_env or password_file")
        parse_camera_url(value)  # ValueError names what is unsupported
        return value

    @model_validator(mode="after")
    def _credentials_for_network_cameras(self) -> CameraConfig:
        network = parse_camera_url(self.url).kind == "network"
        if self.username is not None and not network:
            raise located("username is only for rtsp:// and http(s):// cameras", "username")
        if (self.password_env or self.password_file) and self.username is None:
            raise located("a camera password needs a username", "username")
        return self

    @model_validator(mode="after")
    def _unique_children(self) -> CameraConfig:
        for kind, items in (("zones", self.zones), ("lines", self.lines)):
            ids = [item.id for item in items]
            for i, item_id in enumerate(ids):
                if ids.index(item_id) != i:
                    raise located(f"{kind[:-1]} id {item_id!r} is used twice", kind, i, "id")
        return self

    def stream_url(self, password: str | None) -> str:
        """The URL to open, with the credentials filled in (never log it)."""
        if self.username is None or parse_camera_url(self.url).kind != "network":
            return self.url
        parts = urlsplit(self.url)
        auth = quote(self.username, safe="") + (f":{quote(password, safe='')}" if password else "")
        host = parts.netloc.rsplit("@", 1)[-1]
        return urlunsplit((parts.scheme, f"{auth}@{host}", parts.path, parts.query, parts.fragment))
