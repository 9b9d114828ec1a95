"""Camera and vision config: located errors for the mistakes an installer makes."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config_loader import check_config

BASE = """\
site_id: s
gateway_id: g
rooms:
  - id: r1
cameras:
  - id: cam1
    room_id: r1
    url: rtsp://10.0.0.5/stream1
"""


def problems_for(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "edge.yaml"
    path.write_text(text)
    return [str(p) for p in check_config(path)]


def test_a_minimal_camera_is_valid(tmp_path: Path) -> None:
    assert problems_for(tmp_path, BASE) == []


@pytest.mark.parametrize(("extra", "expected"), [
    ("    zones:\n      - id: z\n        polygon: [[0, 0], [1.5, 0], [1, 1]]\n",
     "cameras[0].zones[0].polygon: point [1.5, 0.0] must be relative coordinates"),
    ("    zones:\n      - id: z\n        polygon: [[0, 0], [1, 0]]\n",
     "cameras[0].zones[0].polygon: List should have at least 3 items"),
    ("    zones:\n      - id: z\n        polygon: [[0, 0], [1, 0], [1, 1]]\n"
     "      - id: z\n        polygon: [[0, 0], [1, 0], [1, 1]]\n",
     "cameras[0].zones[1].id: zone id 'z' is used twice"),
    ("    lines:\n      - id: door\n        a: [0.5, 0.5]\n        b: [0.5, 0.5]\n",
     "cameras[0].lines[0].b: a and b must be at least 0.03 apart"),
    ("    zones:\n      - id: z\n        polygon: [[0, 0], [0.5, 0.5], [1, 1]]\n",
     "cameras[0].zones[0].polygon: the polygon has no area"),
    ("    ignore:\n      - [[0, 0], [0.5, 0.5], [1, 1]]\n", "cameras[0].ignore: the polygon has no area"),
    ("    detect_fps: 0\n", "cameras[0].detect_fps: Input should be greater than 0"),
    ("    ignore:\n      - [[0, 0], [1, 1]]\n", "cameras[0].ignore: each ignore polygon needs"),
    ("    fps: 2\n", "cameras[0].fps: unknown key"),
], ids=["point-outside", "two-points", "zone-twice", "line-too-short", "zone-collinear", "ignore-collinear",
        "fps-zero", "ignore-line", "unknown-key"])
def test_camera_mistakes_are_located(tmp_path: Path, extra: str, expected: str) -> None:
    (problem,) = problems_for(tmp_path, BASE + extra)
    assert expected in problem


def test_a_password_in_the_url_is_refused(tmp_path: Path) -> None:
    text = BASE.replace("rtsp://10.0.0.5", "rtsp://admin:secret@10.0.0.5")
    (problem,) = problems_for(tmp_path, text)
    assert ":8: cameras[0].url: no password in the URL" in problem
    assert "secret" not in problem


def test_unknown_room_and_id_clash_with_a_device(tmp_path: Path) -> None:
    (problem,) = problems_for(tmp_path, BASE.replace("    room_id: r1", "    room_id: r9"))
    assert "cameras[0].room_id: room 'r9' is not in rooms" in problem
    clash = BASE + "devices:\n  - id: cam1\n    type: simulated\n    room_id: r1\n"
    (problem,) = problems_for(tmp_path, clash)
    assert "cameras[0].id: id 'cam1' is already used" in problem


@pytest.mark.parametrize(("url", "expected"), [
    ("ftp://10.0.0.5/cam", "cameras[0].url: unsupported camera URL scheme 'ftp'"),
    ("v4l2:front", "cameras[0].url: v4l2: needs a device number or /dev path"),
    ("   ", "cameras[0].url: camera URL is empty"),
], ids=["ftp", "v4l2-name", "blank"])
def test_unsupported_urls_are_refused_at_check_time(tmp_path: Path, url: str, expected: str) -> None:
    (problem,) = problems_for(tmp_path, BASE.replace("rtsp://10.0.0.5/stream1", repr(url)))
    assert expected in problem


def test_credentials_only_for_network_cameras(tmp_path: Path) -> None:
    on_file = BASE.replace("rtsp://10.0.0.5/stream1", "/dev/video0") + "    username: bob\n"
    (problem,) = problems_for(tmp_path, on_file)
    assert "cameras[0].username: username is only for rtsp:// and http(s):// cameras" in problem
    no_user = BASE + "    password_env: CAM_PASSWORD\n"
    (problem,) = problems_for(tmp_path, no_user)
    assert "cameras[0].username: a camera password needs a username" in problem
