"""What the alert bench triggers: a sensor node on a pty, and an MJPEG camera showing a chosen scene."""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
import tty
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np

from firmware_bridge.node_protocol import ReadingKind
from firmware_bridge.simulator import SimulatedNode

PERSON_IMAGE = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "images" / "astronaut.jpg"
BOUNDARY = "benchframe"
TELEMETRY_S = 1.0


class PanicNode:
    """A simulated node on a pseudo-terminal: reports telemetry, answers the gateway, presses panic."""

    def __init__(self, node_id: str) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # frames pass byte for byte
        self.path = os.ttyname(self._slave)
        self.node = SimulatedNode(node_id, interval_s=TELEMETRY_S)
        self._lock = threading.Lock()  # the node's state and the pty are shared with the presser
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-node", daemon=True)

    def start(self) -> None:
        """Say HELLO and start talking."""
        self._write(self.node.hello())
        self._thread.start()

    def press(self) -> float:
        """Press the panic button; return the wall time just before the bytes go to the pty."""
        with self._lock:
            frame = self.node.raise_alarm(ReadingKind.PANIC_BUTTON)
            at = time.time()
            os.write(self._master, frame)
        return at

    def release(self) -> None:
        """Let go of the button (the alert stays: a person resolves a panic)."""
        self._write(self.node.raise_alarm(ReadingKind.PANIC_BUTTON, active=False))

    def stop(self) -> None:
        """Stop talking and close the pty."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _write(self, frame: bytes) -> None:
        with self._lock:
            os.write(self._master, frame)

    def _run(self) -> None:
        next_report = time.monotonic()
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.05)
            data = b""
            if ready:
                try:
                    data = os.read(self._master, 4096)
                except OSError:
                    return
            with self._lock:
                frames = self.node.receive(data) if data else []  # ACKs, HELLO replies
                frames += self.node.due_frames()  # events the gateway has not ACKed yet
                if time.monotonic() >= next_report:
                    frames.append(self.node.telemetry())
                    next_report = time.monotonic() + TELEMETRY_S
                for frame in frames:
                    os.write(self._master, frame)


def scene_jpegs() -> tuple[bytes, bytes]:
    """JPEGs of an empty room (synthetic, fixed seed) and of the same size with a person (the astronaut)."""
    person = cv2.imread(str(PERSON_IMAGE))
    assert person is not None, f"cannot read {PERSON_IMAGE}"
    height, width = person.shape[:2]
    rng = np.random.default_rng(7)
    empty = np.zeros((height, width, 3), np.uint8)
    empty[:] = np.linspace(90, 170, width, dtype=np.uint8)[None, :, None]  # a lit wall
    empty[int(height * 0.7):] = (70, 80, 95)  # the floor
    cv2.rectangle(empty, (width // 8, height // 5), (width // 3, height // 2), (40, 60, 40), -1)  # a board
    noise = rng.normal(0, 4, empty.shape)
    empty = np.clip(empty.astype(np.float64) + noise, 0, 255).astype(np.uint8)
    quality = [cv2.IMWRITE_JPEG_QUALITY, 85]
    empty_jpeg, person_jpeg = (cv2.imencode(".jpg", image, quality)[1].tobytes() for image in (empty, person))
    return empty_jpeg, person_jpeg


class SceneCamera:
    """An MJPEG-over-HTTP camera at a fixed rate whose scene the bench switches between empty and person."""

    def __init__(self, fps: float) -> None:
        self.fps = fps
        self._jpegs = dict(zip(("empty", "person"), scene_jpegs(), strict=True))
        self._scene = "empty"
        self._first_served: dict[int, float] = {}  # switch number -> wall time its first frame was written
        self._switches = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/stream.mjpg"
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True).start()

    def show(self, scene: str) -> int:
        """Switch the scene from the next frame on; return the switch number for served_at()."""
        with self._lock:
            self._switches += 1
            self._scene = scene
            return self._switches

    def served_at(self, switch: int, timeout: float = 2.0) -> float:
        """Wall time just before the first frame of that switch was written to the socket."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if switch in self._first_served:
                    return self._first_served[switch]
            time.sleep(0.002)
        raise RuntimeError("the gateway is not reading the camera stream")

    def close(self) -> None:
        """Stop serving and cut the stream."""
        self._closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        camera = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self) -> None:
                with contextlib.suppress(OSError):  # the gateway hung up
                    camera._stream(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

    def _stream(self, handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        handler.send_header("Cache-Control", "no-cache")
        handler.end_headers()
        due = time.monotonic()
        while not self._closing.is_set():
            with self._lock:
                switch, jpeg = self._switches, self._jpegs[self._scene]
            head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
            at = time.time()
            handler.wfile.write(head + jpeg + b"\r\n")
            handler.wfile.flush()
            with self._lock:
                self._first_served.setdefault(switch, at)
            due += 1.0 / self.fps
            time.sleep(max(0.0, due - time.monotonic()))
