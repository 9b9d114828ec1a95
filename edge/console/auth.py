"""Console authentication: session cookie, CSRF header on changes, and role checks."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from edge.console.context import ConsoleContext, context
from edge.console.sessions import Session
from edge.users import Role

COOKIE = "edge_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
RANK = {Role.VIEWER: 0, Role.SECURITY: 1, Role.OPERATOR: 2, Role.ADMIN: 3}


@dataclass(frozen=True)
class Principal:
    """The user behind a request, with the role the store holds now."""

    username: str
    role: Role
    session: Session


async def principal(request: Request, ctx: Annotated[ConsoleContext, Depends(context)]) -> Principal:
    """The logged-in user (401 without a live session; 403 on a change without the CSRF header)."""
    session = ctx.sessions.get(request.cookies.get(COOKIE))
    if session is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "not logged in")
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not secrets.compare_digest(sent.encode(), session.csrf_token.encode()):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or wrong CSRF token")
    # Re-read the user: a removed or disabled account, or a changed role, takes effect at once.
    user = await ctx.store.get_user(session.username)
    if user is None or user.disabled:
        ctx.sessions.drop_user(session.username)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "not logged in")
    return Principal(user.username, user.role, session)


def require(role: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits users of at least this role (403 otherwise)."""

    async def check(who: Annotated[Principal, Depends(principal)]) -> Principal:
        if RANK[who.role] < RANK[role]:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"needs the {role} role")
        return who

    return check


Viewer = Annotated[Principal, Depends(require(Role.VIEWER))]
Security = Annotated[Principal, Depends(require(Role.SECURITY))]
Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
