"""The vision models of one gateway: one session per model and one inference pool, shared."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from edge.config_vision import VisionConfig
from edge.vision.detector import Detector, Found, Prepared

log = logging.getLogger(__name__)

HEAD_SHARE = 0.3  # top share of a person box blurred as the head, found face or not
BLUR_PERSON_SCORE = 0.25  # below the counting threshold: for blurring, a doubtful person counts
HEAD_CROPS_MAX = 30  # face searches around heads per snapshot (each costs one face-model run)


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

    def finish_persons(self, prepared: Prepared, turn: threading.Lock | None = None) -> list[Found]:
        """Run the person model on a prepared frame (call from the pool) and count the call.

        turn: held only around the model's run, so a camera's next frame starts the moment
        this one's run ends, while this one is still being decoded.
        """
        if turn is None:
            outputs = self.person.infer(prepared.tensor)
        else:
            with turn:
                outputs = self.person.infer(prepared.tensor)
        with self._lock:
            self.inferences += 1
        return self.person.decode(prepared, outputs)

    def regions_to_blur(self, image: np.ndarray) -> list[tuple[float, float, float, float]]:
        """Faces, plus the head of every person: a face the face model misses is still covered.

        The face model sees the whole frame at 192x192, where a face across a classroom is a
        few pixels; so it also looks again around each person's head at full resolution.
        """
        face = self.face
        if face is None:
            raise RuntimeError("face blurring is off")
        boxes = [f.box for f in face.detect(image)]
        height, width = image.shape[:2]
        persons = self.person.detect(image, score=BLUR_PERSON_SCORE)
        for person in persons[:HEAD_CROPS_MAX]:
            x1, y1, x2, y2 = person.box
            boxes.append((x1, y1, x2, y1 + (y2 - y1) * HEAD_SHARE))
            # A square around the upper half of the person, where a face can be.
            side = max(x2 - x1, (y2 - y1) / 2) * 1.2
            cx = (x1 + x2) / 2
            left, top = int(max(0, cx - side / 2)), int(max(0, y1 - side * 0.1))
            right, bottom = int(min(width, cx + side / 2)), int(min(height, top + side))
            if right - left < 16 or bottom - top < 16:
                continue
            for found in face.detect(np.ascontiguousarray(image[top:bottom, left:right])):
                fx1, fy1, fx2, fy2 = found.box
                boxes.append((fx1 + left, fy1 + top, fx2 + left, fy2 + top))
        return boxes

    def close(self) -> None:
        """Stop the pool (running calls finish)."""
        self.pool.shutdown(wait=False, cancel_futures=True)
