"""`edge detect`: run the person and face models on images or video files and print what they find."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from edge.config_vision import REPO_MODELS
from edge.errors import EdgeError
from edge.vision.detector import Detector, Found

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm"}


def _score(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"a score threshold is between 0 and 1, not {text}")
    return value


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the `detect` subcommand."""
    detect = sub.add_parser(
        "detect", help="run the models on images or video files",
        description="Run the person and/or face model on images or video files (one sampled frame "
                    "per second of video by default) and print counts and boxes.")
    detect.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image or video file")
    detect.add_argument("--json", action="store_true", help="one JSON object per image or frame")
    detect.add_argument("--model", choices=("person", "face", "all"), default="all",
                        help="which model to run (default: all)")
    detect.add_argument("--models-dir", type=Path, default=REPO_MODELS, help="directory of models and cards")
    detect.add_argument("--person-card", default="nanodet.yaml", help="card of the person model")
    detect.add_argument("--face-card", default="blazeface-full-range.yaml", help="card of the face model")
    detect.add_argument("--score", type=_score, default=None, help="score threshold (default: the card's)")
    detect.add_argument("--every", type=int, default=0,
                        help="video: analyse every Nth frame (default: one frame per second)")
    detect.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads")


def _frames(path: Path, every: int) -> Iterator[tuple[str, np.ndarray | None, str | None]]:
    """Yield (name, image, error) for an image, or for sampled frames of a video."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
        yield str(path), image, None if image is not None else _why_unreadable(path, "image")
        return
    if not path.is_file():
        yield str(path), None, _why_unreadable(path, "video")
        return
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            yield str(path), None, "not an image or video OpenCV can decode"
            return
        fps = capture.get(cv2.CAP_PROP_FPS)
        step = every if every > 0 else max(1, round(fps)) if fps and np.isfinite(fps) else 10
        index = 0
        sampled = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if index % step == 0:
                sampled += 1
                yield f"{path}#frame={index}", frame, None
            index += 1
        if sampled == 0:
            yield str(path), None, "no decodable frame in the video"
    finally:
        capture.release()


def _why_unreadable(path: Path, kind: str) -> str:
    if not path.exists():
        return "no such file"
    if not path.is_file():
        return "not a file"
    return f"cannot decode it as an {kind}" if kind == "image" else f"cannot decode it as a {kind}"


def _record(name: str, persons: list[Found], faces: list[Found], ms: float) -> dict[str, object]:
    return {
        "image": name, "persons": len(persons), "faces": len(faces),
        "detections": [{"label": f.label, "score": f.score, "box": list(f.box)} for f in persons + faces],
        "ms": round(ms, 1),
    }


def _text(record: dict[str, object]) -> str:
    lines = [f"{record['image']}: {record['persons']} persons, {record['faces']} faces ({record['ms']} ms)"]
    detections = record["detections"]
    assert isinstance(detections, list)
    lines += [f"  {d['label']:<7} {d['score']:.2f}  [{', '.join(f'{v:.0f}' for v in d['box'])}]"
              for d in detections]
    return "\n".join(lines)


def run_detect(args: argparse.Namespace) -> int:
    """Load the chosen models, analyse every path, print results; 1 if any input failed."""
    try:
        person = (Detector(args.models_dir / args.person_card, threads=args.threads, score=args.score)
                  if args.model in ("person", "all") else None)
        face = (Detector(args.models_dir / args.face_card, threads=args.threads, score=args.score)
                if args.model in ("face", "all") else None)
    except (EdgeError, ValueError) as err:
        print(f"edge detect: {err}", file=sys.stderr)
        return 2
    failed = 0
    for path in args.paths:
        for name, image, error in _frames(path, args.every):
            if image is None:
                failed += 1
                print(f"edge detect: {name}: {error}", file=sys.stderr)
                continue
            started = time.perf_counter()
            try:
                persons = person.detect(image) if person else []
                faces = face.detect(image) if face else []
            except EdgeError as err:
                failed += 1
                print(f"edge detect: {name}: {err}", file=sys.stderr)
                continue
            record = _record(name, persons, faces, (time.perf_counter() - started) * 1000)
            print(json.dumps(record) if args.json else _text(record), flush=True)
    return 1 if failed else 0
