"""Cameras: open each enabled one the way the daemon does and read one frame."""

from __future__ import annotations

import getpass
import grp
import os
import time
from functools import partial
from pathlib import Path

from edge.config import EdgeConfig
from edge.config_vision import CameraConfig
from edge.doctor.report import FAIL, PASS, Check, Line
from edge.errors import CameraUnavailable, SecretUnavailable


def camera_checks(config: EdgeConfig, timeout_s: float) -> list[Check]:
    """One check per enabled camera; the runner's deadline covers an open that hangs in OpenCV."""
    cameras = [cam for cam in config.cameras if cam.enabled]
    if not cameras:
        return [Check("cameras", lambda: [Line(PASS, "cameras", "no enabled cameras configured")])]
    return [Check(f"camera {cam.id}", partial(_camera_lines, cam, timeout_s)) for cam in cameras]


def _camera_lines(cam: CameraConfig, timeout_s: float) -> list[Line]:
    return [camera(cam, timeout_s)]


def camera(cam: CameraConfig, timeout_s: float) -> Line:
    """Open the camera, read one frame and report its resolution (never the credentials)."""
    # Imported here: OpenCV is slow to load and only this check needs it.
    from edge.vision.camera_url import open_capture, parse_camera_url

    name = f"camera {cam.id}"
    try:
        password = cam.resolve_password(f"cameras.{cam.id}")
    except SecretUnavailable as err:
        return Line(FAIL, name, str(err))
    source = parse_camera_url(cam.stream_url(password))
    if source.kind == "v4l2" and isinstance(source.target, str):
        denied = _device_denied(Path(source.target))
        if denied:
            return Line(FAIL, name, denied)
    started = time.monotonic()
    try:
        capture = open_capture(cam.id, source, min(cam.open_timeout_s, timeout_s),
                               min(cam.read_timeout_s, timeout_s))
    except CameraUnavailable as err:
        return Line(FAIL, name, err.reason)
    try:
        ok, frame = capture.read()
    finally:
        capture.release()
    elapsed = time.monotonic() - started
    if not ok or frame is None:
        return Line(FAIL, name, f"{source.display} opened but gave no frame")
    height, width = frame.shape[:2]
    return Line(PASS, name, f"{source.display}: {width}x{height}, first frame in {elapsed:.1f}s")


def _device_denied(path: Path) -> str | None:
    try:
        info = path.stat()
    except OSError:
        return None  # open_capture says the device is missing
    if os.access(path, os.R_OK | os.W_OK):
        return None
    try:
        group = grp.getgrgid(info.st_gid).gr_name
    except KeyError:
        group = str(info.st_gid)
    return (f"{path} is not readable and writable by {getpass.getuser()} (group {group}): the edge user "
            f"must be in group {group} (usermod -aG {group} edge, then restart the service)")
