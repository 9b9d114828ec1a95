"""Console first-admin setup with the one-time token printed in the log."""

from __future__ import annotations

import asyncio
import logging
import math

from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel, Field

from edge.console.context import ConsoleContext, Ctx
from edge.console.routes_auth import start_session
from edge.users import (
    PASSWORD_MAX,
    USERNAME_MAX,
    InvalidUserInput,
    Role,
    UserExists,
    check_password,
    hash_password,
    validate_username,
)

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api")
# The throttle's "username" for setup attempts: not a valid username, so no login shares it.
THROTTLE_KEY = "#setup"
ACTOR = "setup"


class SetupBody(BaseModel):
    """The first admin: the setup token from the log, a username and a password."""

    token: str = Field(max_length=128)
    username: str = Field(max_length=USERNAME_MAX * 2)
    password: str = Field(max_length=PASSWORD_MAX)


async def offer_setup(ctx: ConsoleContext, url: str) -> str | None:
    """At console start: without an admin, issue a setup token, log it once and return it."""
    if await ctx.store.count_admins() > 0:
        return None
    token = ctx.setup.issue()
    log.warning("console setup: no admin yet; open %s and use setup token %s "
                "(or run: edge user add NAME --role admin)", url, token)
    return token


async def setup_pending(ctx: ConsoleContext) -> bool:
    """True while a token waits and still no admin exists (one made by the CLI ends the offer)."""
    if not ctx.setup.pending:
        return False
    if await ctx.store.count_admins() > 0:
        ctx.setup.clear()
        return False
    return True


@router.get("/setup")
async def setup_status(ctx: Ctx) -> dict[str, bool]:
    """Whether the console waits for its first admin; no session needed."""
    return {"required": await setup_pending(ctx)}


@router.post("/setup")
async def setup(body: SetupBody, request: Request, response: Response, ctx: Ctx) -> dict[str, str]:
    """Create the first admin with the setup token and log it in; throttled like login."""
    addr = request.client.host if request.client else "unknown"
    wait = ctx.throttle.check(THROTTLE_KEY, addr, ctx.clock.monotonic())
    if wait > 0:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "too many failed attempts; try later",
                            headers={"Retry-After": str(math.ceil(wait))})
    if not await setup_pending(ctx):
        raise HTTPException(status.HTTP_409_CONFLICT, "no setup pending: an admin exists, log in instead")
    if not ctx.setup.matches(body.token):
        ctx.throttle.failed(THROTTLE_KEY, addr, ctx.clock.monotonic())
        await ctx.store.append_audit("anonymous", "console.setup_failed", ACTOR, {"addr": addr})
        raise HTTPException(status.HTTP_403_FORBIDDEN, "wrong setup token")
    name = body.username.strip().lower()
    try:
        validate_username(name)
        check_password(body.password, name)
    except InvalidUserInput as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(err)) from err
    # argon2 takes tens of milliseconds of CPU: keep it off the event loop.
    password_hash = await asyncio.to_thread(hash_password, body.password, ctx.hasher)
    async with ctx.setup.lock:
        # Again under the lock: a parallel request or the CLI may have made an admin meanwhile.
        if not ctx.setup.matches(body.token) or not await setup_pending(ctx):
            raise HTTPException(status.HTTP_409_CONFLICT, "no setup pending: an admin exists, log in instead")
        try:
            await ctx.store.add_user(name, Role.ADMIN, password_hash, ACTOR)
        except UserExists as err:  # a non-admin user has that name; the token stays valid
            raise HTTPException(status.HTTP_409_CONFLICT, str(err)) from err
        ctx.setup.clear()
    ctx.throttle.succeeded(THROTTLE_KEY, addr)
    log.warning("console setup: first admin %r created from %s; the setup token is spent", name, addr)
    return await start_session(ctx, response, name, Role.ADMIN, addr)
