"""Local console users: roles, name and password rules, argon2 hashing, login throttling."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from edge.errors import EdgeError

USERNAME_MAX = 32
PASSWORD_MIN = 10
# argon2 digests any length cheaply, but a bound keeps a hostile form post small.
PASSWORD_MAX = 256
PASSWORD_MIN_DISTINCT = 5
_USERNAME = re.compile(rf"[a-z][a-z0-9_.-]{{0,{USERNAME_MAX - 1}}}")
# The most guessed passwords that are long enough to pass the length rule.
_COMMON = frozenset({
    "1234567890", "12345678910", "0123456789", "password12", "password123", "password1234",
    "qwertyuiop", "1q2w3e4r5t", "iloveyou12", "admin12345", "administrator", "letmein123",
    "changeme123", "welcome123", "qwerty1234", "1qaz2wsx3edc",
})

# argon2-cffi's defaults (RFC 9106 low-memory profile: 64 MiB, t=3, p=4); when a
# release changes them, stored hashes are upgraded at the next successful login.
_HASHER = PasswordHasher()
_DUMMY_HASH: str | None = None


class Role(StrEnum):
    """What a console user may do; the store's CHECK constraint lists the same four."""

    VIEWER = "viewer"
    SECURITY = "security"
    OPERATOR = "operator"
    ADMIN = "admin"


class UserError(EdgeError):
    """A user operation was refused."""


class InvalidUserInput(UserError):
    """A username, role or password breaks the rules."""


class UnknownUser(UserError):
    """No user has that name."""

    def __init__(self, username: str) -> None:
        self.username = username
        super().__init__(f"no user named {username!r}")


class UserExists(UserError):
    """A user with that name already exists."""

    def __init__(self, username: str) -> None:
        self.username = username
        super().__init__(f"user {username!r} already exists")


class LastAdmin(UserError):
    """The change would leave no enabled admin."""

    def __init__(self, username: str) -> None:
        self.username = username
        super().__init__(f"{username!r} is the last enabled admin; add another admin first")


@dataclass(frozen=True)
class User:
    """A console user as listed: never carries the password hash."""

    username: str
    role: Role
    created_at: float | None
    updated_at: float | None
    disabled: bool


@dataclass(frozen=True)
class StoredUser(User):
    """A user with the stored hash, for verifying a login."""

    password_hash: str = field(default="", repr=False)


def validate_username(name: str) -> str:
    """Return name if it is 1-32 chars of [a-z0-9_.-] starting with a letter; else raise."""
    if not _USERNAME.fullmatch(name):
        raise InvalidUserInput(
            f"invalid username {name!r}: 1-{USERNAME_MAX} characters of a-z 0-9 _ . -, "
            "starting with a lowercase letter"
        )
    return name


def parse_role(text: str) -> Role:
    """Return the Role named text; raise InvalidUserInput listing the valid ones."""
    try:
        return Role(text)
    except ValueError:
        raise InvalidUserInput(
            f"invalid role {text!r}: one of {', '.join(r.value for r in Role)}"
        ) from None


def check_password(password: str, username: str) -> None:
    """Raise InvalidUserInput unless password meets the policy.

    The policy follows NIST SP 800-63B rather than composition rules: 10-256 characters,
    no control characters, at least 5 different characters, not containing the username,
    and not one of a few very common passwords.
    """
    if len(password) < PASSWORD_MIN:
        raise InvalidUserInput(f"password too short: at least {PASSWORD_MIN} characters")
    if len(password) > PASSWORD_MAX:
        raise InvalidUserInput(f"password too long: at most {PASSWORD_MAX} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in password):
        raise InvalidUserInput("password contains control characters")
    if len(set(password)) < PASSWORD_MIN_DISTINCT:
        raise InvalidUserInput(
            f"password too repetitive: at least {PASSWORD_MIN_DISTINCT} different characters"
        )
    if username and username.lower() in password.lower():
        raise InvalidUserInput("password must not contain the username")
    if password.lower() in _COMMON:
        raise InvalidUserInput("password is too common")


def hash_password(password: str, hasher: PasswordHasher | None = None) -> str:
    """Return the argon2id hash (PHC string) of password."""
    return (hasher or _HASHER).hash(password)


def verify_password(
    stored_hash: str | None, password: str, hasher: PasswordHasher | None = None
) -> tuple[bool, str | None]:
    """Check password against stored_hash; return (ok, new hash when parameters changed).

    A None hash (unknown user) still costs one hash, so response time does not
    reveal which usernames exist.
    """
    ph = hasher or _HASHER
    if stored_hash is None:
        _spend(ph, password)
        return False, None
    try:
        ph.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False, None
    return True, ph.hash(password) if ph.check_needs_rehash(stored_hash) else None


def _spend(ph: PasswordHasher, password: str) -> None:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = ph.hash("dummy password for timing")
    with contextlib.suppress(VerificationError, InvalidHashError):
        ph.verify(_DUMMY_HASH, password)


@dataclass
class _Failures:
    count: int
    last: float


class LoginThrottle:
    """Counts failed logins per username and per client address; pure, time is passed in.

    After `threshold` consecutive failures a key is locked for base_s, doubling with each
    further failure up to max_s. A key with no failure for forget_s starts over.
    """

    def __init__(
        self, user_threshold: int = 5, addr_threshold: int = 20, base_s: float = 30.0,
        max_s: float = 900.0, forget_s: float = 3600.0, max_entries: int = 10_000,
    ) -> None:
        self.user_threshold = user_threshold
        # Higher per address: staff behind one NAT or at one shared PC mistype too.
        self.addr_threshold = addr_threshold
        self.base_s = base_s
        self.max_s = max_s
        self.forget_s = forget_s
        self.max_entries = max_entries
        self._users: dict[str, _Failures] = {}
        self._addrs: dict[str, _Failures] = {}

    def check(self, username: str, addr: str, now: float) -> float:
        """Return how many seconds this login must wait (0.0: try it)."""
        return max(
            self._wait(self._users.get(username.lower()), self.user_threshold, now),
            self._wait(self._addrs.get(addr), self.addr_threshold, now),
        )

    def failed(self, username: str, addr: str, now: float) -> None:
        """Record a failed login."""
        self._bump(self._users, username.lower(), now)
        self._bump(self._addrs, addr, now)

    def succeeded(self, username: str, addr: str) -> None:
        """Forget the failures of this username and address."""
        self._users.pop(username.lower(), None)
        self._addrs.pop(addr, None)

    def lockout_s(self, failures: int, threshold: int) -> float:
        """Return the lockout that follows the given number of consecutive failures."""
        if failures < threshold:
            return 0.0
        return float(min(self.max_s, self.base_s * 2 ** min(failures - threshold, 32)))

    def _wait(self, entry: _Failures | None, threshold: int, now: float) -> float:
        if entry is None or now - entry.last >= self.forget_s:
            return 0.0
        return max(0.0, entry.last + self.lockout_s(entry.count, threshold) - now)

    def _bump(self, table: dict[str, _Failures], key: str, now: float) -> None:
        entry = table.get(key)
        if entry is None or now - entry.last >= self.forget_s:
            entry = table[key] = _Failures(0, now)
        entry.count += 1
        entry.last = now
        if len(table) > self.max_entries:
            self._prune(table, now)

    def _prune(self, table: dict[str, _Failures], now: float) -> None:
        # Keys come from the network: bound the memory a spray of names can take.
        for key in [k for k, e in table.items() if now - e.last >= self.forget_s]:
            del table[key]
        excess = len(table) - self.max_entries
        if excess > 0:
            for key in sorted(table, key=lambda k: table[k].last)[:excess]:
                del table[key]
