"""Make sure the data directory exists and can really be written."""

from __future__ import annotations

import os
from pathlib import Path

from edge.errors import DataDirUnusable


def prepare_data_dir(path: Path) -> Path:
    """Create the data dir if needed and prove it is writable; raise DataDirUnusable."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-probe"
        # Root ignores permission bits, so only an actual write tells the truth
        # (read-only mounts, a file in the way, a full disk).
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"ok")
            os.fsync(fd)
        finally:
            os.close(fd)
        probe.unlink()
    except OSError as err:
        raise DataDirUnusable(str(path), err.strerror or str(err)) from err
    return path
