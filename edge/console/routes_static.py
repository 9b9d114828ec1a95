"""The console's web page: `/` and a fixed allow-list of assets under `/static/`, all from the package."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, Response, status

STATIC_DIR = Path(__file__).resolve().parent / "static"
# The only files ever served; the request picks a key here, never a path on disk.
ASSETS: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "alerts.js": "text/javascript; charset=utf-8",
    "rooms.js": "text/javascript; charset=utf-8",
    "devices.js": "text/javascript; charset=utf-8",
    "audit.js": "text/javascript; charset=utf-8",
}
CSP = ("default-src 'self'; img-src 'self' data:; connect-src 'self'; style-src 'self'; "
       "script-src 'self'; frame-ancestors 'none'")
HEADERS = {"Cache-Control": "no-cache", "Content-Security-Policy": CSP}

router = APIRouter()


@cache
def _load(name: str) -> bytes:
    """One allow-listed file's bytes, read once (they are part of the installed package)."""
    return (STATIC_DIR / name).read_bytes()


def _serve(name: str) -> Response:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "not found")
    return Response(_load(name), media_type=media_type, headers=HEADERS)


def index(request: Request) -> Response:
    """The console page; needs no session (it logs in through the API)."""
    return _serve("index.html")


def asset(request: Request) -> Response:
    """A stylesheet or script from the allow-list; anything else is 404."""
    name = request.path_params.get("name", "")
    return _serve(name if isinstance(name, str) else "")


# Plain routes (not APIRoutes): they are page plumbing, not part of the session-guarded JSON API.
# Sync endpoints run in the thread pool, so the first (cached) disk read never blocks the loop.
router.add_route("/", index, methods=["GET"], include_in_schema=False)
router.add_route("/static/{name}", asset, methods=["GET"], include_in_schema=False)
