"""A real MJPEG-over-HTTP camera for tests: frames of the fixture clip, and ways to make it fail."""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

import cv2

from tests.conftest import REPO, free_port

CLIP = REPO / "tests" / "fixtures" / "vtest-cut.mp4"
BOUNDARY = "campusedgeframe"

Mode = Literal["frames", "stall", "garbage", "corrupt"]


@functools.cache
def clip_jpegs(limit: int = 60, scale: float = 0.5) -> tuple[bytes, ...]:
    """The first frames of the clip, JPEG-encoded (halved in size: the tests need data, not pixels)."""
    capture = cv2.VideoCapture(str(CLIP))
    jpegs: list[bytes] = []
    try:
        while len(jpegs) < limit:
            ok, frame = capture.read()
            if not ok:
                break
            small = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            encoded, buffer = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])
            assert encoded
            jpegs.append(buffer.tobytes())
    finally:
        capture.release()
    assert jpegs, f"cannot decode {CLIP}"
    return tuple(jpegs)


class MjpegServer:
    """Serves multipart/x-mixed-replace MJPEG on 127.0.0.1; can die, come back, stall or send garbage."""

    def __init__(self, fps: float = 10.0, port: int | None = None) -> None:
        self.fps = fps
        self.port = port or free_port()
        self.mode: Mode = "frames"
        self.requests = 0
        self._jpegs = clip_jpegs()
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def start(self) -> MjpegServer:
        """Listen on self.port (the same port again after die())."""
        self._closing.clear()
        httpd = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler_class())
        httpd.daemon_threads = True
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def die(self) -> None:
        """The camera loses power: stop listening and cut every open connection."""
        self._closing.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):  # the client may have gone already
                conn.shutdown(socket.SHUT_RDWR)

    def set_mode(self, mode: Mode) -> None:
        """Set what new and open connections get.

        frames: the clip; stall: nothing, connection kept open; garbage: random bytes, not even
        HTTP; corrupt: a proper multipart stream whose parts hold random bytes instead of JPEGs.
        """
        self.mode = mode

    def __enter__(self) -> MjpegServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.die()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self) -> None:
                server.requests += 1
                with server._lock:
                    server._connections.add(self.connection)
                try:
                    server._stream(self)
                except OSError:
                    pass  # the reader hung up or die() cut the connection
                finally:
                    with server._lock:
                        server._connections.discard(self.connection)

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep pytest output clean

        return Handler

    def _stream(self, handler: BaseHTTPRequestHandler) -> None:
        mode = self.mode
        if mode == "garbage":
            # Not even HTTP: what a misconfigured port (say, a telnet console) answers.
            while not self._closing.is_set() and self.mode == "garbage":
                handler.wfile.write(os.urandom(4096))
                time.sleep(0.02)
            return
        handler.send_response(200)
        handler.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        handler.send_header("Cache-Control", "no-cache")
        handler.end_headers()
        period = 1.0 / self.fps
        due = time.monotonic()
        index = 0
        while not self._closing.is_set():
            if self.mode == "stall":
                # The TCP connection stays open and silent, like a camera whose encoder froze.
                time.sleep(0.05)
                due = time.monotonic()
                continue
            if self.mode == "corrupt":
                jpeg = os.urandom(len(self._jpegs[0]))
            else:
                jpeg = self._jpegs[index % len(self._jpegs)]
            index += 1
            handler.wfile.write(
                f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                + jpeg
                + b"\r\n"
            )
            handler.wfile.flush()
            due += period
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
