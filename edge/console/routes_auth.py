"""Console login, logout, who-am-I and health routes."""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel, Field

from edge.console.auth import COOKIE, Viewer
from edge.console.context import ConsoleContext, Ctx
from edge.users import (
    PASSWORD_MAX,
    USERNAME_MAX,
    InvalidUserInput,
    Role,
    validate_username,
    verify_password,
)

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api")


class LoginBody(BaseModel):
    """A login form."""

    # Bounded: the name lands in the audit log, the password in argon2.
    username: str = Field(max_length=USERNAME_MAX * 2)
    password: str = Field(max_length=PASSWORD_MAX)


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness for load balancers and the installer; no session needed."""
    return {"status": "ok"}


@router.post("/login")
async def login(body: LoginBody, request: Request, response: Response, ctx: Ctx) -> dict[str, str]:
    """Check the password, start a session and set its cookie; throttled per user and address."""
    addr = request.client.host if request.client else "unknown"
    name = body.username.strip().lower()
    wait = ctx.throttle.check(name, addr, ctx.clock.monotonic())
    if wait > 0:
        # Not audited: a locked-out flood would otherwise grow the audit log without bound.
        log.warning("console login for %r from %s throttled for %.0fs", name[:USERNAME_MAX], addr, wait)
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "too many failed logins; try later",
                            headers={"Retry-After": str(math.ceil(wait))})
    try:
        user = await ctx.store.get_user(validate_username(name))
    except InvalidUserInput:
        user = None
    stored_hash = user.password_hash if user is not None and not user.disabled else None
    # argon2 takes tens of milliseconds of CPU: keep it off the event loop.
    ok, new_hash = await asyncio.to_thread(verify_password, stored_hash, body.password, ctx.hasher)
    if not ok or user is None:
        ctx.throttle.failed(name, addr, ctx.clock.monotonic())
        await ctx.store.append_audit("anonymous", "console.login_failed", name[:USERNAME_MAX],
                                     {"addr": addr})
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong username or password")
    ctx.throttle.succeeded(name, addr)
    if new_hash is not None:
        await ctx.store.set_password(user.username, new_hash, user.username, action="user.rehash")
    return await start_session(ctx, response, user.username, user.role, addr)


async def start_session(ctx: ConsoleContext, response: Response, username: str, role: Role,
                        addr: str) -> dict[str, str]:
    """Start a session (audited as a login), set its cookie; return the login answer."""
    session = ctx.sessions.create(username)
    await ctx.store.append_audit(username, "console.login", username, {"addr": addr})
    response.set_cookie(COOKIE, session.token, httponly=True, samesite="strict",
                        secure=ctx.secure_cookies, path="/")
    return {"username": username, "role": str(role), "csrf_token": session.csrf_token}


@router.post("/logout")
async def logout(who: Viewer, response: Response, ctx: Ctx) -> dict[str, str]:
    """End this session and clear its cookie."""
    ctx.sessions.drop(who.session.token)
    await ctx.store.append_audit(who.username, "console.logout", who.username, {})
    response.delete_cookie(COOKIE, httponly=True, samesite="strict", secure=ctx.secure_cookies, path="/")
    return {"status": "logged out"}


@router.get("/me")
async def me(who: Viewer) -> dict[str, Any]:
    """The logged-in user, its role and the CSRF token (a reloaded page gets it back here)."""
    return {"username": who.username, "role": str(who.role), "csrf_token": who.session.csrf_token}
