"""Byte streams for node links: a serial port through pyserial, and a raw fd (pty master)."""

from __future__ import annotations

import asyncio
import os
import select
import threading
from collections.abc import Callable
from typing import Protocol, TypeVar

import serial

from firmware_bridge.errors import TransportError

_T = TypeVar("_T")
# Small reads pace the intake: a flood waits in the OS buffer (backpressure to the
# node) instead of being decoded and then dropped on the bus; 16 KiB reads measured 4x worse.
READ_CHUNK = 512
POLL_S = 0.1  # a blocking read returns at least this often, so stopping is prompt


class ByteStream(Protocol):
    """An open, bidirectional byte stream."""

    name: str

    async def read(self) -> bytes:
        """Return the bytes available now (b'' after a quiet poll interval)."""
        ...

    async def write(self, data: bytes) -> None:
        """Write all of data."""
        ...

    def close(self) -> None:
        """Release the stream."""
        ...


class SerialStream:
    """A serial device (or pty slave) via pyserial; blocking calls run in a thread."""

    def __init__(self, port: serial.SerialBase, name: str) -> None:
        self._port = port
        self.name = name
        # close() runs on the loop while a worker thread may be inside port.read/write.
        # Closing the fd under it would let that call use a number the OS may already
        # have handed to another open. So the last call in flight closes the port.
        self._guard = threading.Lock()
        self._busy = 0
        self._closing = False

    @classmethod
    async def open(cls, path: str, baudrate: int = 115200) -> SerialStream:
        """Open a serial port; raise TransportError when it is absent or not ours."""
        try:
            port = await asyncio.to_thread(
                serial.serial_for_url, path, baudrate=baudrate, timeout=POLL_S, write_timeout=2.0
            )
        except (serial.SerialException, OSError, ValueError) as err:
            raise TransportError(path, str(err)) from err
        return cls(port, path)

    async def read(self) -> bytes:
        """Read what arrives within one poll interval."""
        try:
            return bytes(await asyncio.to_thread(self._in_flight, self._read_blocking))
        except (serial.SerialException, OSError) as err:
            raise TransportError(self.name, str(err)) from err

    def _read_blocking(self) -> bytes:
        waiting = self._port.in_waiting
        return bytes(self._port.read(max(1, min(waiting, READ_CHUNK))))

    async def write(self, data: bytes) -> None:
        """Write all bytes (bounded by the write timeout)."""
        try:
            await asyncio.to_thread(self._in_flight, lambda: self._port.write(data))
        except (serial.SerialException, OSError) as err:
            raise TransportError(self.name, str(err)) from err

    def close(self) -> None:
        """Close the port now, or (if a read or write is in progress) cancel it and close after it."""
        # Synchronous, like every ByteStream.close: the closing is only handed over.
        with self._guard:
            if self._closing:
                return
            self._closing = True
            if self._busy:
                for cancel in ("cancel_read", "cancel_write"):  # not on every pyserial URL class
                    if (method := getattr(self._port, cancel, None)) is not None:
                        method()
                return
        self._port.close()

    def _in_flight(self, call: Callable[[], _T]) -> _T:
        """Run a blocking port call in this thread, counted so close() can wait for it."""
        with self._guard:
            if self._closing:
                raise serial.SerialException("port is closed")
            self._busy += 1
        try:
            return call()
        finally:
            with self._guard:
                self._busy -= 1
                last = self._closing and self._busy == 0
            if last:
                self._port.close()


class FdStream:
    """A raw file descriptor, e.g. the master side of a pseudo-terminal."""

    def __init__(self, fd: int, name: str, companion_fd: int | None = None) -> None:
        self._fd = fd
        self._companion_fd = companion_fd  # closed together with fd (a pty's slave)
        self.name = name

    async def read(self) -> bytes:
        """Read what arrives within one poll interval."""
        return await asyncio.to_thread(self._read_blocking)

    def _read_blocking(self) -> bytes:
        ready, _, _ = select.select([self._fd], [], [], POLL_S)
        if not ready:
            return b""
        try:
            return os.read(self._fd, READ_CHUNK)
        except OSError as err:  # EIO: the other side of the pty was closed
            raise TransportError(self.name, str(err)) from err

    async def write(self, data: bytes) -> None:
        """Write all bytes."""
        view = memoryview(data)
        while view:
            try:
                written = await asyncio.to_thread(os.write, self._fd, view)
            except OSError as err:
                raise TransportError(self.name, str(err)) from err
            view = view[written:]

    def close(self) -> None:
        """Close the descriptor (and its companion)."""
        os.close(self._fd)
        if self._companion_fd is not None:
            os.close(self._companion_fd)


def open_pty() -> tuple[FdStream, str]:
    """Open a pseudo-terminal; return its master stream and the slave's device path."""
    import tty

    master, slave = os.openpty()
    tty.setraw(slave)  # no echo, no line editing: frames pass through byte for byte
    path = os.ttyname(slave)
    # Keep the slave open here too, so the master sees no EIO before a peer opens it.
    return FdStream(master, path, companion_fd=slave), path


class TcpStream:
    """A TCP connection, e.g. to a serial-to-Ethernet converter in the classroom."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str) -> None:
        self._reader = reader
        self._writer = writer
        self.name = name

    @classmethod
    async def open(cls, address: str, connect_timeout_s: float = 5.0) -> TcpStream:
        """Connect to 'host:port' ('[v6addr]:port' for IPv6); raise TransportError on failure."""
        host, _, port = address.rpartition(":")
        host = host.strip("[]")
        try:
            async with asyncio.timeout(connect_timeout_s):
                reader, writer = await asyncio.open_connection(host, int(port))
        except (OSError, ValueError, TimeoutError) as err:
            raise TransportError(address, str(err) or type(err).__name__) from err
        return cls(reader, writer, address)

    async def read(self) -> bytes:
        """Read what arrives within one poll interval; TransportError when the peer closed."""
        try:
            async with asyncio.timeout(POLL_S):
                data = await self._reader.read(READ_CHUNK)
        except TimeoutError:
            return b""
        except OSError as err:
            raise TransportError(self.name, str(err)) from err
        if not data:
            raise TransportError(self.name, "connection closed by peer")
        return data

    async def write(self, data: bytes) -> None:
        """Write all bytes and wait until they are handed to the kernel."""
        try:
            self._writer.write(data)
            await self._writer.drain()
        except OSError as err:
            raise TransportError(self.name, str(err)) from err

    def close(self) -> None:
        """Close the connection."""
        self._writer.close()
