"""The console's OpenAPI document: only for signed-in users, and it describes the API."""

from __future__ import annotations

from pathlib import Path

from tests.console.harness import login, running_console


async def test_openapi_needs_a_session_and_lists_the_alert_routes(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console, console.client() as client:
        assert (await client.get("/api/openapi.json")).status_code == 401
        assert (await client.get("/openapi.json")).status_code == 404  # no public schema
        await login(client, "vera")
        response = await client.get("/api/openapi.json")
        assert response.status_code == 200
        paths = response.json()["paths"]
        assert {"/api/login", "/api/alerts", "/api/alerts/{alert_id}/ack", "/api/stream"} <= set(paths), paths
        assert "/api/openapi.json" not in paths and "/" not in paths
