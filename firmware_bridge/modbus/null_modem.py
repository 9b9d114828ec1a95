"""A virtual null-modem cable: two pseudo-terminals whose masters are bridged by threads.

A Modbus client and a server open the two slave paths with pyserial as if they were
the two ends of an RS-485 line. With a baudrate, bytes are held back until they would
have crossed a real line (bits_per_char per byte), and the line is shared by both
directions (half duplex): a new frame starts only after the line has been silent for
the RTU inter-frame gap (t3.5). Threads, not the event loop, do the pacing, so the
timing holds while the loop is busy with the client and the server.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
import tty
from dataclasses import dataclass
from types import TracebackType

from firmware_bridge.modbus.timing import BITS_PER_CHAR, char_time_s, frame_gap_s

_CHUNK = 512
_POLL_S = 0.05  # a bridge thread notices close() at least this often


@dataclass
class NullModemStats:
    """Bytes put on the line in each direction, and those of them dropped because nobody read them."""

    a_to_b: int = 0
    b_to_a: int = 0
    dropped: int = 0


class NullModem:
    """Two pty slave paths, a_path and b_path, connected like a cable; close() when done."""

    def __init__(self, baudrate: int | None = None, bits_per_char: int = BITS_PER_CHAR) -> None:
        self.baudrate = baudrate
        self._char_s = char_time_s(baudrate, bits_per_char) if baudrate else 0.0
        self._gap_s = frame_gap_s(baudrate) if baudrate else 0.0
        self._line = threading.Lock()
        self._line_free_at = 0.0  # when the last byte put on the line has arrived
        self._last_sender = -1
        self._stop = threading.Event()
        self.stats = NullModemStats()
        self._fds: list[int] = []
        masters, paths = [], []
        for _ in range(2):
            master, slave = os.openpty()
            tty.setraw(slave)  # no echo, no line editing: bytes pass through unchanged
            os.set_blocking(master, False)
            # Keeping the slave open here too spares the master EIO while no peer has it open.
            self._fds += [master, slave]
            masters.append(master)
            paths.append(os.ttyname(slave))
        self.a_path, self.b_path = paths
        self._threads = [
            threading.Thread(target=self._pump, args=(masters[0], masters[1], 0), daemon=True,
                             name=f"null-modem {paths[0]}>{paths[1]}"),
            threading.Thread(target=self._pump, args=(masters[1], masters[0], 1), daemon=True,
                             name=f"null-modem {paths[1]}>{paths[0]}"),
        ]
        for thread in self._threads:
            thread.start()

    def close(self) -> None:
        """Stop the bridge and close both pseudo-terminals."""
        if self._stop.is_set():
            return
        self._stop.set()
        for thread in self._threads:
            thread.join()
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> NullModem:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def _pump(self, source: int, sink: int, direction: int) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([source], [], [], _POLL_S)
            if not ready:
                continue
            try:
                data = os.read(source, _CHUNK)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:  # EIO: a peer closed its end; the pty stays usable for the next open
                self._stop.wait(_POLL_S)
                continue
            if self._char_s:
                # Event.wait rather than sleep: close() must not wait out a slow line.
                self._stop.wait(max(0.0, self._reserve_line(len(data), direction) - time.monotonic()))
            # Counted before delivery: a reader that has the bytes must also see them counted.
            if direction == 0:
                self.stats.a_to_b += len(data)
            else:
                self.stats.b_to_a += len(data)
            self._deliver(sink, data)

    def _reserve_line(self, size: int, direction: int) -> float:
        """Book the line for size bytes; return when the last of them has arrived."""
        now = time.monotonic()
        with self._line:
            # More bytes of the frame still on the line follow it directly; a new frame
            # (from either side: the line is half duplex) only after t3.5 of silence.
            continuing = direction == self._last_sender and now < self._line_free_at + 1.5 * self._char_s
            start = max(now, self._line_free_at + (0.0 if continuing else self._gap_s))
            self._line_free_at = start + size * self._char_s
            self._last_sender = direction
            return self._line_free_at

    def _deliver(self, sink: int, data: bytes) -> None:
        view = memoryview(data)
        while view and not self._stop.is_set():
            try:
                view = view[os.write(sink, view):]
            except BlockingIOError:
                # Nobody reads this end and its buffer is full: a real line loses the bytes too.
                self.stats.dropped += len(view)
                return
            except OSError:
                return
