"""Camera URL vocabulary: which kind of source a URL names, and how to show it without secrets."""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from typing import Literal

NETWORK_SCHEMES = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}

# Query parameters some IP cameras take credentials in (e.g. ...?user=admin&password=...).
_SECRET_QUERY_KEYS = re.compile(r"pass|pwd|token|secret|key|auth|sig", re.IGNORECASE)
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_V4L2_DEVICE = re.compile(r"^/dev/(video\d+|v4l/.+)$")

SourceKind = Literal["network", "v4l2", "file"]


@dataclass(frozen=True)
class CameraSource:
    """A parsed camera URL: its kind, what to hand OpenCV, and a loggable form."""

    kind: SourceKind
    target: str | int
    display: str


def redact_url(url: str) -> str:
    """Return url with user:password@ and secret-looking query values replaced by ***."""
    match = _SCHEME.match(url)
    if match is None:
        return url
    prefix, rest = url[: match.end()], url[match.end() :]
    # The last '@' ends the userinfo even when a password holds a raw '@' or '/';
    # hiding too much (an '@' in the path) is better than leaking a password.
    at = rest.rfind("@")
    if at >= 0:
        rest = "***@" + rest[at + 1 :]
    base, sep, query = rest.partition("?")
    if sep:
        fragment = ""
        if "#" in query:
            query, fragment = query.split("#", 1)
            fragment = "#" + fragment
        parts = []
        for item in query.split("&"):
            key, eq, _value = item.partition("=")
            parts.append(f"{key}=***" if eq and _SECRET_QUERY_KEYS.search(key) else item)
        rest = base + "?" + "&".join(parts) + fragment
    return prefix + rest


def parse_camera_url(url: str) -> CameraSource:
    """Classify url as network (rtsp/http), V4L2 device or file; raise ValueError if unsupported."""
    text = url.strip()
    if not text:
        raise ValueError("camera URL is empty")
    display = redact_url(text)
    match = _SCHEME.match(text)
    if match is not None:
        scheme = match.group(1).lower()
        if scheme in NETWORK_SCHEMES:
            return CameraSource("network", text, display)
        if scheme == "file":
            return CameraSource("file", urllib.parse.unquote(text[len("file://") :]), display)
        raise ValueError(f"unsupported camera URL scheme {scheme!r} in {display}")
    if text.lower().startswith("v4l2:"):
        device = text[len("v4l2:") :]
        if device.isdigit():
            return CameraSource("v4l2", int(device), display)
        if _V4L2_DEVICE.match(device):
            return CameraSource("v4l2", device, display)
        raise ValueError(f"v4l2: needs a device number or /dev path, got {display}")
    if _V4L2_DEVICE.match(text):
        return CameraSource("v4l2", text, display)
    if text.lower().startswith("file:"):
        return CameraSource("file", text[len("file:") :], display)
    return CameraSource("file", text, display)
