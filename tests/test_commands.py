"""The command service on a real store: validation, at-most-once, interrupted commands, audit."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from edge.clock import ManualClock
from edge.command_args import Args, LightArgs, RelayArgs
from edge.commands import CommandService, validate_args
from edge.commands.local_topic import parse_command
from edge.errors import CommandFailed, CommandRejected
from edge.events import Command
from edge.store import Store


@pytest.mark.parametrize(("action", "args", "reason"), [
    ("relay", {"state": "toggle"}, "args.state"),
    ("relay", {"state": "on", "channel": 256}, "args.channel"),
    ("relay", {"state": "on", "channel": "1"}, "args.channel"),  # strict: no string numbers
    ("light", {"level": 101}, "args.level"),
    ("light", {"level": 40.5}, "args.level"),
    ("ir", {"code": "abc"}, "args.code"),
    ("report_interval", {"seconds": 0}, "args.seconds"),
    ("reboot", {}, "unknown action 'reboot'"),
    ("relay", [], "args must be a JSON object"),
])
def test_node_args_are_validated(action: str, args: Any, reason: str) -> None:
    with pytest.raises(CommandRejected) as err:
        validate_args("node", action, args)
    assert reason in err.value.reason


def test_absolute_states_are_accepted() -> None:
    assert validate_args("node", "relay", {"state": "on"}) == RelayArgs(channel=0, state="on")
    assert validate_args("node", "light", {"channel": 2, "level": 0}) == LightArgs(channel=2, level=0)
    assert validate_args("pjlink", "input", {"source": "31"}).model_dump() == {"source": "31"}
    with pytest.raises(CommandRejected, match="known: none"):
        validate_args("modbus", "relay", {"state": "on"})


def test_parse_command_reasons() -> None:
    assert parse_command("d", b'{"command_id": "a b", "action": "x"}', 0)[1].startswith("command_id")
    assert parse_command("d", b'{"command_id": "a", "action": 3}', 0)[1].startswith("action")
    assert "unknown keys: when" in parse_command("d", b'{"command_id":"a","action":"x","when":1}', 0)[1]
    command, reason = parse_command("d", b'{"command_id":"a","action":"x"}', 5.0)
    assert reason == "" and command == Command("a", "d", "x", {}, issued_at=5.0)


class Relay:
    """A device executor that counts calls and can be told to fail or hang."""

    def __init__(self) -> None:
        self.calls = 0
        self.fail: CommandFailed | None = None
        self.hang = asyncio.Event()
        self.hang.set()

    async def __call__(self, action: str, args: Args) -> dict[str, Any]:
        self.calls += 1
        await self.hang.wait()
        if self.fail:
            raise self.fail
        return {"done": action}


async def test_each_command_id_runs_once_across_restarts(tmp_path: Path) -> None:
    clock = ManualClock(1_800_000_000.0)
    store = await Store.open(tmp_path, clock)
    service, relay = CommandService(store, clock), Relay()
    service.register("n1", "node", relay)
    first = await service.submit(Command("c1", "n1", "relay", {"state": "on"}), "tester")
    assert first.status == "ok" and first.detail == {"done": "relay"} and relay.calls == 1
    relay.fail = CommandFailed("timeout", "no ACK after 3 attempts")
    failed = await service.submit(Command("c2", "n1", "relay", {"state": "off"}), "tester")
    assert (failed.status, failed.reason) == ("timeout", "no ACK after 3 attempts")

    # A command still running when a copy arrives: the copy does not run it again.
    relay.fail = None
    relay.hang.clear()
    running = asyncio.create_task(service.submit(Command("c3", "n1", "relay", {"state": "on"}), "t"))
    async with asyncio.timeout(5):
        while relay.calls < 3:  # c3 is claimed and inside the executor
            await asyncio.sleep(0.01)
        copy = await service.submit(Command("c3", "n1", "relay", {"state": "on"}), "tester")
    assert copy.status == "running" and copy.duplicate and relay.calls == 3
    relay.hang.set()
    assert (await running).status == "ok"
    await store.close()

    # After a restart the ids are still known; c4 was claimed but never finished (a crash).
    store = await Store.open(tmp_path, clock)
    await store.claim_command("c4", "n1", "relay", {"state": "on"}, "tester")
    service, relay = CommandService(store, clock), Relay()
    service.register("n1", "node", relay)
    again = await service.submit(Command("c1", "n1", "relay", {"state": "on"}), "tester")
    assert again.status == "ok" and again.duplicate and relay.calls == 0
    assert (await service.submit(Command("c2", "n1", "relay", {"state": "off"}), "t")).status == "timeout"
    crashed = await service.submit(Command("c4", "n1", "relay", {"state": "on"}), "tester")
    assert crashed.status == "interrupted" and relay.calls == 0

    expired = await service.submit(Command("c5", "n1", "relay", {"state": "on"},
                                           expires_at=clock.now() - 1), "tester")
    assert expired.status == "rejected" and expired.reason == "command expired" and relay.calls == 0
    assert await store.verify_audit() is None
    await store.close()
