"""Camera URLs: what kind of source a URL names, how to open it, and how to log it safely."""

from __future__ import annotations

import math
import socket
import time
import urllib.parse
from pathlib import Path
from typing import Any

import cv2

from edge.camera_urls import NETWORK_SCHEMES, CameraSource, parse_camera_url, redact_url
from edge.errors import CameraUnavailable

__all__ = ["CameraSource", "capture_fps", "open_capture", "parse_camera_url", "redact_url"]

FALLBACK_FPS = 10.0


def open_capture(
    camera_id: str, source: CameraSource, open_timeout_s: float, read_timeout_s: float
) -> Any:
    """Open source with the right OpenCV backend; raise CameraUnavailable saying why it failed."""
    if source.kind == "v4l2":
        device = source.target
        if isinstance(device, str) and not Path(device).exists():
            raise CameraUnavailable(camera_id, f"no such device {device}")
        # The V4L2 backend refuses the FFmpeg timeout parameters; the reader's watchdog covers it.
        capture = _construct(camera_id, source, device, cv2.CAP_V4L2, [])
        if not capture.isOpened():
            capture.release()
            raise CameraUnavailable(
                camera_id, f"cannot open {source.display} (busy, missing or not a capture device)"
            )
        return capture

    if source.kind == "file":
        path = Path(str(source.target))
        if not path.exists():
            raise CameraUnavailable(camera_id, f"file not found: {source.display}")
        if path.is_dir():
            raise CameraUnavailable(camera_id, f"{source.display} is a directory, not a video file")
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, max(1, round(open_timeout_s * 1000)),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC, max(1, round(read_timeout_s * 1000)),
    ]  # fmt: skip
    started = time.monotonic()
    # CAP_FFMPEG explicitly: letting OpenCV guess would also try its image-sequence backend.
    capture = _construct(camera_id, source, str(source.target), cv2.CAP_FFMPEG, params)
    if capture.isOpened():
        return capture
    capture.release()
    if source.kind == "file":
        raise CameraUnavailable(
            camera_id, f"cannot decode {source.display} (not a video, corrupt or truncated)"
        )
    elapsed = time.monotonic() - started
    if elapsed >= 0.9 * open_timeout_s:
        raise CameraUnavailable(camera_id, f"no stream from {source.display} within {open_timeout_s:g}s")
    raise CameraUnavailable(camera_id, _diagnose_network(source, min(2.0, open_timeout_s)))


def capture_fps(capture: Any) -> float:
    """The stream's nominal frame rate, or FALLBACK_FPS when the container does not say."""
    fps = float(capture.get(cv2.CAP_PROP_FPS))
    if not math.isfinite(fps) or fps <= 0 or fps > 240:
        return FALLBACK_FPS
    return fps


def _construct(camera_id: str, source: CameraSource, target: str | int, api: int, params: list[int]) -> Any:
    try:
        return cv2.VideoCapture(target, api, params)
    except cv2.error as exc:
        # OpenCV's message may quote the URL with its password: show the redacted form instead.
        text = str(exc).replace(str(target), source.display).strip()
        first_line = text.splitlines()[0] if text else type(exc).__name__
        raise CameraUnavailable(camera_id, f"OpenCV refused {source.display}: {first_line}") from None


def _diagnose_network(source: CameraSource, timeout_s: float) -> str:
    """Say why a network open failed fast: FFmpeg reports only failure, a TCP probe tells more."""
    parts = urllib.parse.urlsplit(str(source.target))
    host = parts.hostname
    try:
        port = parts.port or NETWORK_SCHEMES.get(parts.scheme.lower(), 80)
    except ValueError:
        return f"bad port in {source.display}"
    if not host:
        return f"no host in {source.display}"
    where = f"{host}:{port}"
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except ConnectionRefusedError:
        return f"connection refused by {where}"
    except socket.gaierror:
        return f"cannot resolve host {host}"
    except TimeoutError:
        return f"no answer from {where}"
    except OSError as exc:
        return f"cannot connect to {where}: {exc.strerror or exc}"
    return f"{where} accepts connections but sent no playable video for {source.display}"
