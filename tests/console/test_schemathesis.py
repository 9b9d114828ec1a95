"""schemathesis against the console's OpenAPI over real HTTP, without and with a session: no 500."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from edge.console import ConsoleServer, create_app
from tests.console.harness import PASSWORD, running_console


def _schema_dict() -> dict[str, Any]:
    # The schema does not depend on the running parts, so an app without them describes it.
    app = create_app(store=None, alerts=None, bus=None, snapshots=None, clock=None)  # type: ignore[arg-type]
    return app.openapi()


# The live stream never ends and logout would end the shared session: both have own tests.
schema = schemathesis.openapi.from_dict(_schema_dict()).exclude(path=["/api/stream", "/api/logout"])


class Served:
    """The console on a real port, run by its own event loop in a thread."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.port: int | None = None
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        async with running_console(self.tmp_path) as console:
            server = ConsoleServer(console.app, "127.0.0.1", 0)
            task = asyncio.create_task(server.run(lambda: None))
            while server.bound_port is None:
                await asyncio.sleep(0.02)
            self.port = server.bound_port
            self.ready.set()
            while not self.stop.is_set():
                await asyncio.sleep(0.05)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str], dict[str, str]]]:
    runner = Served(tmp_path_factory.mktemp("console"))
    runner.thread.start()
    assert runner.ready.wait(20), "the console did not start"
    base = f"http://127.0.0.1:{runner.port}"
    login = requests.post(f"{base}/api/login", json={"username": "ada", "password": PASSWORD}, timeout=10)
    assert login.status_code == 200, login.text
    yield base, dict(login.cookies), {"X-CSRF-Token": login.json()["csrf_token"]}
    runner.stop.set()
    runner.thread.join(10)


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error_without_a_session(case: schemathesis.Case,
                                          served: tuple[str, dict[str, str], dict[str, str]]) -> None:
    base, _, _ = served
    case.call_and_validate(base_url=base, checks=[not_a_server_error], timeout=10)


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error_with_an_admin_session(case: schemathesis.Case,
                                              served: tuple[str, dict[str, str], dict[str, str]]) -> None:
    base, cookies, headers = served
    case.call_and_validate(base_url=base, cookies=cookies, headers=headers, checks=[not_a_server_error],
                           timeout=10)
