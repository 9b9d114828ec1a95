"""The gateway's node link: frames in, commands out, and recovery after an unplug."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from firmware_bridge.errors import CommandTimeout, TransportError
from firmware_bridge.node_link import NodeLink
from firmware_bridge.node_protocol import (
    Ack,
    Command,
    CommandAction,
    Frame,
    Hello,
    Nack,
    NackReason,
    Telemetry,
)
from firmware_bridge.streams import open_pty
from tests.conftest import cancel_and_wait
from tests.node_plug import Plug, wait_for


async def test_reads_frames_runs_commands_and_survives_unplug(tmp_path: Path) -> None:
    plug = Plug(tmp_path / "usb-classroom-node-if00")
    plug.plug()
    frames: list[Frame] = []
    link = NodeLink(str(plug.link_path), frames.append, backoff=lambda attempt: 0.05)
    task = asyncio.create_task(link.run())
    try:
        await wait_for(lambda: any(isinstance(f.message, Telemetry) for f in frames))
        assert any(isinstance(f.message, Hello) for f in frames)  # asked for on open
        assert await link.send(Command(CommandAction.LIGHT_LEVEL, channel=0, value=40)) == Ack(2)
        reply = await link.send(Command(CommandAction.RELAY, channel=7, value=1))
        assert isinstance(reply, Nack) and reply.reason is NackReason.BAD_ARGUMENT
        assert plug.node.lights == {0: 40}

        await plug.unplug()
        await wait_for(lambda: link.state == "absent")
        with pytest.raises(TransportError):
            await link.send(Command(CommandAction.RELAY, channel=0, value=1))
        assert link.stats.disconnects == 1 and link.stats.open_failures >= 1

        count = len(frames)
        plug.plug()
        await wait_for(lambda: link.state == "open" and len(frames) > count + 2)
        assert link.stats.opens == 2
        assert isinstance(await link.send(Command(CommandAction.RELAY, channel=0, value=1)), Ack)
    finally:
        await cancel_and_wait(task)
        if plug.task is not None and not plug.task.done():
            await plug.unplug()


async def test_a_silent_node_times_out_a_command(tmp_path: Path) -> None:
    master, path = open_pty()  # nobody answers on the other side
    link = NodeLink(path, lambda f: None, command_timeout_s=0.3)
    task = asyncio.create_task(link.run())
    try:
        await wait_for(lambda: link.state == "open")
        with pytest.raises(CommandTimeout, match="no ACK/NACK"):
            await link.send(Command(CommandAction.RELAY, channel=0, value=1))
        assert link.stats.timeouts == 1
    finally:
        await cancel_and_wait(task)
        master.close()
