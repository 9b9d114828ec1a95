"""`edge detect` on real images and video: JSON lines, counts, and clear errors for bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from tests.conftest import REPO, edge_command, edge_env

IMAGES = REPO / "tests" / "fixtures" / "images"
CLIP = REPO / "tests" / "fixtures" / "vtest-cut.mp4"


def detect(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*edge_command(), "detect", *map(str, args)], capture_output=True, text=True,
                          timeout=120, env=edge_env(), cwd=REPO)


def test_json_lines_for_images_and_sampled_video_frames() -> None:
    run = detect(IMAGES / "astronaut.jpg", CLIP, "--json", "--every", "50")
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [line["image"] for line in lines] == [
        str(IMAGES / "astronaut.jpg"), f"{CLIP}#frame=0", f"{CLIP}#frame=50", f"{CLIP}#frame=100"]
    astronaut = lines[0]
    assert set(astronaut) == {"image", "persons", "faces", "detections", "ms"}
    assert (astronaut["persons"], astronaut["faces"]) == (1, 1)
    face = next(d for d in astronaut["detections"] if d["label"] == "face")
    x1, y1, x2, y2 = face["box"]
    assert 150 < x1 < x2 < 300 and 50 < y1 < y2 < 200 and 0.5 < face["score"] <= 1
    assert all(line["persons"] >= 2 for line in lines[1:])  # people walk through the whole clip


def test_text_output_and_one_model() -> None:
    run = detect(IMAGES / "basketball1.jpg", "--model", "person")
    assert run.returncode == 0, run.stderr
    head, *boxes = run.stdout.splitlines()
    assert head.startswith(f"{IMAGES / 'basketball1.jpg'}: ") and " 0 faces " in head
    assert boxes and all(line.strip().startswith("person") for line in boxes)


def test_bad_inputs_are_reported_and_the_rest_still_runs(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes((IMAGES / "astronaut.jpg").read_bytes()[:300])
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(bytes(range(256)) * 64)
    run = detect(corrupt, tmp_path / "missing.png", noise, IMAGES / "astronaut.jpg", "--json")
    assert run.returncode == 1
    assert f"{corrupt}: cannot decode it as an image" in run.stderr
    assert f"{tmp_path / 'missing.png'}: no such file" in run.stderr
    assert f"{noise}: not an image or video OpenCV can decode" in run.stderr
    (line,) = run.stdout.splitlines()
    assert json.loads(line)["persons"] == 1


def test_a_model_that_does_not_match_its_card_is_refused(tmp_path: Path) -> None:
    for item in (REPO / "models").iterdir():
        shutil.copy(item, tmp_path / item.name)
    model = tmp_path / "nanodet.onnx"
    data = bytearray(model.read_bytes())
    data[-100] ^= 0xFF
    model.write_bytes(bytes(data))
    run = detect(IMAGES / "astronaut.jpg", "--models-dir", tmp_path)
    assert run.returncode == 2
    assert "differs from its card" in run.stderr and run.stdout == ""
