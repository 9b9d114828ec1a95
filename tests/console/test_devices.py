"""Console device routes: the device list with action schemas, and operator-only device control."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from edge.clock import SystemClock
from edge.command_args import Args
from edge.commands import CommandService
from edge.config import EdgeConfig
from tests.console.harness import Console, login, running_console

CONFIG = EdgeConfig.model_validate({
    "site_id": "s", "gateway_id": "g", "rooms": [{"id": "r1"}, {"id": "r2"}],
    "devices": [
        {"id": "n1", "type": "node", "room_id": "r1", "name": "Front node", "port": "/dev/ttyUSB0"},
        {"id": "p1", "type": "pjlink", "room_id": "r2", "host": "192.0.2.10"},
        {"id": "s1", "type": "simulated", "room_id": "r1"},
    ],
})


class Node:
    """A node executor: records what it was told and answers like a device that did it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, action: str, args: Args) -> dict[str, Any]:
        self.calls.append((action, args.model_dump()))
        return {"acked": True}


@asynccontextmanager
async def console_with_devices(tmp_path: Path) -> AsyncIterator[tuple[Console, Node]]:
    """The harness console with configured devices and a real command service."""
    async with running_console(tmp_path, config=CONFIG) as console:
        node = Node()
        commands = CommandService(console.store, SystemClock())
        commands.register("n1", "node", node)
        commands.register("s1", "simulated", None)
        console.app.state.console.commands = commands
        yield console, node


async def post_command(client: Any, device: str, csrf: str | None, body: Any) -> Any:
    headers = {"X-CSRF-Token": csrf} if csrf is not None else {}
    return await client.post(f"/api/devices/{device}/commands", json=body, headers=headers)


async def test_device_list_in_config_order_with_argument_schemas(tmp_path: Path) -> None:
    async with console_with_devices(tmp_path) as (console, _), console.client() as client:
        assert (await client.get("/api/devices")).status_code == 401
        await login(client, "vera")
        devices = (await client.get("/api/devices")).json()
        assert [(d["device_id"], d["name"], d["type"], d["room_id"]) for d in devices] == [
            ("n1", "Front node", "node", "r1"), ("p1", "p1", "pjlink", "r2"), ("s1", "s1", "simulated", "r1")]
        node, projector, sensor = (d["actions"] for d in devices)
        assert set(node) == {"relay", "light", "ir", "report_interval"}
        assert node["relay"]["properties"]["state"]["enum"] == ["on", "off"]
        assert node["light"]["properties"]["level"]["maximum"] == 100
        assert node["relay"]["additionalProperties"] is False
        assert set(projector) == {"power", "input"}
        assert sensor == {}


async def test_only_operators_and_admins_send_commands_with_csrf(tmp_path: Path) -> None:
    async with console_with_devices(tmp_path) as (console, node):
        body = {"action": "relay", "args": {"state": "on"}}
        async with console.client() as anonymous:
            assert (await post_command(anonymous, "n1", "x", body)).status_code == 401
        for name in ("vera", "sam"):
            async with console.client() as client:
                csrf = await login(client, name)
                response = await post_command(client, "n1", csrf, body)
                assert response.status_code == 403 and "operator" in response.json()["detail"]
        async with console.client() as client:
            csrf = await login(client, "olga")
            assert (await post_command(client, "n1", None, body)).status_code == 403
            assert (await post_command(client, "n1", "wrong", body)).status_code == 403
            assert node.calls == []
            assert (await post_command(client, "n1", csrf, body)).status_code == 200
        async with console.client() as client:
            csrf = await login(client, "ada")
            assert (await post_command(client, "n1", csrf, body)).status_code == 200
        assert node.calls == [("relay", {"channel": 0, "state": "on"})] * 2


async def test_command_runs_once_on_the_device_and_is_audited(tmp_path: Path) -> None:
    async with console_with_devices(tmp_path) as (console, node), console.client() as client:
        csrf = await login(client, "olga")
        light = {"action": "light", "args": {"channel": 2, "level": 40}}
        response = await post_command(client, "n1", csrf, light)
        assert response.status_code == 200
        result = response.json()
        assert result["status"] == "ok" and result["device_id"] == "n1" and result["action"] == "light"
        assert result["detail"] == {"acked": True} and result["duplicate"] is False
        assert len(result["command_id"]) == 36 and result["finished_at"] > 0
        assert node.calls == [("light", {"channel": 2, "level": 40})]
        rows = [r for r in console.audit() if r["action"].startswith("command.")]
        assert [(r["actor"], r["action"], r["target"]) for r in rows] == [
            ("olga", "command.received", "n1"), ("olga", "command.finished", "n1")]
        assert result["command_id"] in rows[0]["detail"]


async def test_a_refused_command_answers_200_rejected_with_the_reason(tmp_path: Path) -> None:
    async with console_with_devices(tmp_path) as (console, node), console.client() as client:
        csrf = await login(client, "olga")
        cases = [("n1", {"action": "toggle"}, "unknown action 'toggle'"),
                 ("n1", {"action": "relay", "args": {"state": "dim"}}, "args.state"),
                 ("s1", {"action": "relay", "args": {"state": "on"}}, "known: none"),
                 # configured but its source is not running: the service does not know it
                 ("p1", {"action": "power", "args": {"state": "on"}}, "unknown device 'p1'")]
        for device, body, reason in cases:
            response = await post_command(client, device, csrf, body)
            assert response.status_code == 200, response.text
            assert response.json()["status"] == "rejected" and reason in response.json()["reason"]
        assert node.calls == []
        assert [r["action"] for r in console.audit() if r["action"].startswith("command.")] == [
            "command.rejected"] * 4


async def test_unknown_device_bad_bodies_and_no_command_service(tmp_path: Path) -> None:
    async with console_with_devices(tmp_path) as (console, node), console.client() as client:
        csrf = await login(client, "olga")
        body = {"action": "relay", "args": {"state": "on"}}
        assert (await post_command(client, "nope", csrf, body)).status_code == 404
        assert (await post_command(client, "x" * 65, csrf, body)).status_code == 422
        bad: Any
        for bad in ({"action": "a" * 65}, {"action": "relay", "args": []}, {"args": {}},
                    {"action": "ir", "args": {"code": "ab" * 2100}}, "relay"):
            response = await post_command(client, "n1", csrf, bad)
            assert response.status_code == 422, (bad, response.text)
        assert node.calls == []
        assert not [r for r in console.audit() if r["action"].startswith("command.")]
        console.app.state.console.commands = None
        assert (await post_command(client, "n1", csrf, body)).status_code == 503
        assert (await post_command(client, "nope", csrf, body)).status_code == 404
