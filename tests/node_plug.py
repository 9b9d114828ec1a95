"""A simulated node behind a by-id style symlink, for unplug/replug tests."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Callable
from pathlib import Path

from firmware_bridge.simulator import SimulatedNode, run_node
from firmware_bridge.streams import FdStream, open_pty
from tests.conftest import cancel_and_wait


class Plug:
    """A node behind a stable by-id style symlink that can be unplugged and plugged back."""

    def __init__(self, link_path: Path, node_id: str = "node-a", interval_s: float = 0.1) -> None:
        self.link_path = link_path
        self.master: FdStream | None = None
        self.task: asyncio.Task[None] | None = None
        self.node = SimulatedNode(node_id, interval_s=interval_s, rng=random.Random(3))

    def plug(self, **behaviour: float) -> None:
        self.master, pty_path = open_pty()
        os.symlink(pty_path, self.link_path)
        self.task = asyncio.create_task(run_node(self.node, self.master, **behaviour))  # type: ignore[arg-type]

    async def unplug(self) -> None:
        assert self.task is not None and self.master is not None
        await cancel_and_wait(self.task)
        self.link_path.unlink()
        self.master.close()  # the gateway's open handle now reads EIO


async def wait_for(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    """Wait until predicate() is true; TimeoutError after timeout seconds."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)
