"""The vision models of one gateway: one session per model and one inference pool, shared."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from edge.config_vision import VisionConfig
from edge.vision.detector import Detector, Found

log = logging.getLogger(__name__)

HEAD_SHARE = 0.22  # top share of a person box blurred as the head when no face was found there


class VisionModels:
    """Person and face detectors plus the thread pool every camera's inference runs in."""

    def __init__(self, config: VisionConfig) -> None:
        self.config = config
        self.person = Detector(config.models_dir / config.person_model, threads=config.threads,
                               score=config.person_score)
        privacy = config.privacy
        self.face: Detector | None = None
        if privacy.snapshots and privacy.blur_faces:
            self.face = Detector(config.models_dir / config.face_model, threads=config.threads,
                                 score=privacy.blur_face_score)
        self.pool = ThreadPoolExecutor(config.workers, thread_name_prefix="inference")
        self._lock = threading.Lock()
        self.inferences = 0

    @classmethod
    def card_paths(cls, config: VisionConfig) -> list[Path]:
        """The cards this config loads (for edge doctor and error messages)."""
        return [config.models_dir / config.person_model, config.models_dir / config.face_model]

    def detect_persons(self, image: np.ndarray) -> list[Found]:
        """Run the person detector (call from the pool) and count the call."""
        found = self.person.detect(image)
        with self._lock:
            self.inferences += 1
        return found

    def regions_to_blur(self, image: np.ndarray) -> list[tuple[float, float, float, float]]:
        """Faces, plus the head of every person: a face the face model misses is still covered."""
        if self.face is None:
            raise RuntimeError("face blurring is off")
        boxes = [f.box for f in self.face.detect(image)]
        for person in self.person.detect(image):
            x1, y1, x2, y2 = person.box
            boxes.append((x1, y1, x2, y1 + (y2 - y1) * HEAD_SHARE))
        return boxes

    def close(self) -> None:
        """Stop the pool (running calls finish)."""
        self.pool.shutdown(wait=False, cancel_futures=True)
