"""The console web page: served from a fixed allow-list, no session, no external URLs, strict CSP."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from edge.console.routes_static import ASSETS, CSP, STATIC_DIR
from tests.console.harness import login, running_console

TYPES = {"/": "text/html", "/static/index.html": "text/html", "/static/console.css": "text/css",
         **{f"/static/{name}": "text/javascript" for name in ASSETS if name.endswith(".js")}}
SCRIPTS = [name for name in ASSETS if name.endswith(".js")]


async def asgi_get(app: FastAPI, path: str, raw_path: bytes) -> int:
    """GET with exactly this path in the ASGI scope (no client-side URL normalisation)."""
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": raw_path, "root_path": "", "query_string": b"",
        "headers": [(b"host", b"testserver")], "client": ("127.0.0.1", 1), "server": ("testserver", 80),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status: int = sent[0]["status"]
    return status


async def test_page_and_assets_are_served_without_a_session(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console, console.client() as client:
        for path, media_type in TYPES.items():
            response = await client.get(path)
            assert response.status_code == 200, path
            assert response.headers["content-type"].split(";")[0] == media_type, path
            assert response.headers["cache-control"] == "no-cache", path
            assert response.headers["x-content-type-options"] == "nosniff", path
            assert response.content, path
        page = await client.get("/")
        assert page.headers["content-security-policy"] == CSP
        assert "frame-ancestors 'none'" in CSP and "script-src 'self'" in CSP
        assert page.content == (STATIC_DIR / "index.html").read_bytes()
        # Still a closed API: the page gives no access by itself.
        assert (await client.get("/api/alerts")).status_code == 401
        assert (await client.get("/api/stream")).status_code == 401


async def test_page_still_served_when_logged_in(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console, console.client() as client:
        await login(client, "sam")
        assert (await client.get("/")).status_code == 200
        assert (await client.get("/api/alerts")).status_code == 200


async def test_unknown_names_and_traversal_are_404(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console, console.client() as client:
        for path in ("/static/app.py", "/static/", "/static/nope.js", "/static/CONSOLE.JS",
                     "/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2fapp.py",
                     "/static/console.js%00", "/static/static/console.js",
                     "/static/%2e%2e%2fapp.py", "/index.html", "/app.py"):
            response = await client.get(path)
            assert response.status_code == 404, path
            assert b"create_app" not in response.content, path
        # FastAPI's trailing-slash redirect may answer here, but only ever towards the same asset.
        response = await client.get("/static/console.js/")
        assert response.status_code == 404 or response.headers["location"].endswith("/static/console.js")
        # The same, straight into the ASGI scope, as a server that does not normalise would pass them.
        for path, raw in (("/static/../app.py", b"/static/../app.py"),
                          ("/static/../app.py", b"/static/%2e%2e/app.py"),
                          ("/static/../routes_static.py", b"/static/..%2Froutes_static.py"),
                          ("/static/console.js\x00", b"/static/console.js%00"),
                          ("/static/..", b"/static/.."), ("/static/.", b"/static/.")):
            assert await asgi_get(console.app, path, raw) == 404, raw


async def test_no_external_urls_and_nothing_inline(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console, console.client() as client:
        for path in TYPES:
            text = (await client.get(path)).text
            assert not re.search(r"https?:", text, re.IGNORECASE), path
            # No protocol-relative URLs either ("//host/x" in src, href, url() or a JS string).
            assert not re.search(r"[\"'(=]\s*//", text), path
    page = (STATIC_DIR / "index.html").read_text()
    # The CSP forbids inline code and styles: keep the page free of them.
    assert not re.search(r"<script(?![^>]*\bsrc=)", page)
    assert not re.search(r"\sstyle\s*=|<style|\son[a-z]+\s*=", page, re.IGNORECASE)
    linked = {ref for ref in re.findall(r'(?:src|href)="([^"]+)"', page) if not ref.startswith("#")}
    assert linked == {f"/static/{name}" for name in ASSETS if name != "index.html"}


def test_every_asset_exists_and_the_script_finds_its_elements() -> None:
    assert {p.name for p in STATIC_DIR.iterdir()} >= set(ASSETS)
    page = (STATIC_DIR / "index.html").read_text()
    script = "\n".join((STATIC_DIR / name).read_text() for name in SCRIPTS)
    ids = set(re.findall(r'\bid="([^"]+)"', page))
    wanted = set(re.findall(r'\$\("([^"]+)"\)', script))
    assert wanted and wanted <= ids, wanted - ids
    assert ".innerHTML" not in script  # alert text from sensors is untrusted: textContent only
    for needle in ("/api/login", "/api/me", "/api/stream", "/api/alerts", "/api/logout", "X-CSRF-Token",
                   "EventSource", "AudioContext", "/api/setup", "/api/rooms", "/api/cameras", "/api/devices",
                   "/api/audit", "/history", "/api/uplink"):
        assert needle in script, needle
