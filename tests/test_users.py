"""Console users: rules, argon2 hashing, login throttling, the store methods and `edge user`."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from edge.clock import ManualClock
from edge.store import DB_FILENAME, LATEST_VERSION, Store
from edge.store.database import Database
from edge.store.schema import MIGRATIONS
from edge.users import (
    InvalidUserInput,
    LastAdmin,
    LoginThrottle,
    Role,
    UnknownUser,
    UserExists,
    check_password,
    hash_password,
    parse_role,
    validate_username,
    verify_password,
)
from tests.conftest import edge_command, edge_env, write_config

PASSWORD = "correct horse battery"
FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


# --- names, roles, passwords ---------------------------------------------------------------

@pytest.mark.parametrize("name", ["a", "alice", "j.doe", "guard_2", "x-ray", "a" * 32])
def test_valid_usernames(name: str) -> None:
    assert validate_username(name) == name


@pytest.mark.parametrize("name", ["", "Alice", "1abc", "_x", ".x", "a b", "a" * 33, "al!ce",
                                  "alice\n", "élise"])
def test_invalid_usernames(name: str) -> None:
    with pytest.raises(InvalidUserInput):
        validate_username(name)


def test_roles() -> None:
    assert [r.value for r in Role] == ["viewer", "security", "operator", "admin"]
    assert parse_role("security") is Role.SECURITY
    with pytest.raises(InvalidUserInput, match="viewer, security, operator, admin"):
        parse_role("root")


@pytest.mark.parametrize("password", [PASSWORD, "Tr0ub4dor&3", "ten chars!", "ünïcødé-pässwörd"])
def test_good_passwords(password: str) -> None:
    check_password(password, "alice")


@pytest.mark.parametrize(("password", "why"), [
    ("short1!", "too short"),
    ("x" * 257, "too long"),
    ("aaaaaaaaaaaa", "repetitive"),
    ("1212121212", "repetitive"),
    ("alice-rocks-2024", "username"),
    ("xxALICExx99", "username"),
    ("password123", "common"),
    ("line\nbreak-pass", "control"),
])
def test_bad_passwords(password: str, why: str) -> None:
    with pytest.raises(InvalidUserInput, match=why):
        check_password(password, "alice")


# --- hashing -------------------------------------------------------------------------------

def test_hash_and_verify() -> None:
    stored = hash_password(PASSWORD)
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert hash_password(PASSWORD) != stored  # salted
    assert verify_password(stored, PASSWORD) == (True, None)
    assert verify_password(stored, PASSWORD + "x") == (False, None)
    assert verify_password("not a hash", PASSWORD) == (False, None)
    assert verify_password(None, PASSWORD) == (False, None)  # unknown user


def test_verify_rehashes_when_parameters_change() -> None:
    old = hash_password(PASSWORD, FAST)
    ok, new = verify_password(old, PASSWORD)
    assert ok and new is not None and new != old
    assert verify_password(new, PASSWORD) == (True, None)  # current parameters: no rehash
    assert verify_password(old, "wrong password!") == (False, None)  # never rehash on failure


# --- throttle ------------------------------------------------------------------------------

def test_throttle_locks_after_five_failures_and_doubles_to_the_cap() -> None:
    t = LoginThrottle()
    now = 1000.0
    for _ in range(4):
        t.failed("alice", "10.0.0.1", now)
        assert t.check("alice", "10.0.0.1", now) == 0.0
    t.failed("alice", "10.0.0.1", now)
    assert t.check("alice", "10.0.0.1", now) == 30.0
    assert t.check("alice", "10.0.0.9", now) == 30.0  # the username is locked from anywhere
    assert t.check("bob", "10.0.0.1", now) == 0.0  # the address is not, yet
    assert t.check("alice", "10.0.0.1", now + 12) == 18.0
    assert t.check("alice", "10.0.0.1", now + 30) == 0.0
    waits = []
    for _ in range(6):
        now += 1000  # still within forget_s of the previous failure
        t.failed("ALICE", "10.0.0.1", now)  # usernames are counted case-insensitively
        waits.append(t.check("alice", "10.0.0.1", now))
    assert waits == [60.0, 120.0, 240.0, 480.0, 900.0, 900.0]


def test_throttle_forgets_and_success_resets() -> None:
    t = LoginThrottle()
    for _ in range(5):
        t.failed("alice", "a1", 0.0)
    assert t.check("alice", "a1", 3599.0) == 0.0  # 30 s lock long over
    t.failed("alice", "a1", 3599.0)
    assert t.check("alice", "a1", 3599.0) == 60.0  # still counting
    t.failed("alice", "a1", 3599.0 + 3600.0)
    assert t.check("alice", "a1", 3599.0 + 3600.0) == 0.0  # an hour quiet: starts over
    for _ in range(5):
        t.failed("bob", "a2", 10.0)
    assert t.check("bob", "a2", 10.0) == 30.0
    t.succeeded("bob", "a2")
    assert t.check("bob", "a2", 10.0) == 0.0


def test_throttle_per_address_catches_a_spray_across_usernames() -> None:
    t = LoginThrottle()
    for i in range(19):
        t.failed(f"user{i}", "203.0.113.5", 50.0)
    assert t.check("admin", "203.0.113.5", 50.0) == 0.0
    t.failed("user19", "203.0.113.5", 50.0)
    assert t.check("admin", "203.0.113.5", 50.0) == 30.0
    assert t.check("admin", "203.0.113.6", 50.0) == 0.0


def test_throttle_memory_is_bounded() -> None:
    t = LoginThrottle(max_entries=100)
    for i in range(1000):
        t.failed(f"u{i}", f"addr{i}", float(i))
    assert len(t._users) <= 101 and len(t._addrs) <= 101
    assert t.check("u999", "x", 999.0) == 0.0 and "u999" in t._users  # newest kept


# --- store ---------------------------------------------------------------------------------

async def test_store_user_methods_are_audited(tmp_path: Path) -> None:
    store = await Store.open(tmp_path, clock=ManualClock(1_700_000_000.0))
    h1 = hash_password(PASSWORD, FAST)
    await store.add_user("alice", Role.ADMIN, h1, "cli")
    await store.add_user("bob", Role.SECURITY, h1, "cli")
    with pytest.raises(UserExists):
        await store.add_user("alice", Role.VIEWER, h1, "cli")
    assert [(u.username, u.role, u.disabled) for u in await store.list_users()] == [
        ("alice", Role.ADMIN, False), ("bob", Role.SECURITY, False)]
    assert not hasattr((await store.list_users())[0], "password_hash")
    alice = await store.get_user("alice")
    assert alice is not None and alice.password_hash == h1 and alice.created_at == 1_700_000_000.0
    assert h1 not in repr(alice)
    assert await store.get_user("carol") is None
    assert await store.count_admins() == 1

    h2 = hash_password("another good one", FAST)
    await store.set_password("bob", h2, "console:alice")
    bob = await store.get_user("bob")
    assert bob is not None and bob.password_hash == h2
    with pytest.raises(UnknownUser):
        await store.set_password("carol", h2, "cli")
    with pytest.raises(LastAdmin):
        await store.remove_user("alice", "cli")
    assert await store.get_user("alice") is not None  # the refused delete was rolled back
    with pytest.raises(UnknownUser):
        await store.remove_user("carol", "cli")
    await store.remove_user("bob", "cli")
    assert [u.username for u in await store.list_users()] == ["alice"]
    assert await store.verify_audit() is None
    await store.close()

    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    rows = conn.execute("SELECT actor, action, target, detail FROM audit ORDER BY id").fetchall()
    assert rows == [
        ("cli", "user.add", "alice", '{"role":"admin"}'),
        ("cli", "user.add", "bob", '{"role":"security"}'),
        ("console:alice", "user.passwd", "bob", "{}"),
        ("cli", "user.remove", "bob", '{"role":"security"}'),
    ]
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        conn.execute("INSERT INTO users (username, role, password_hash) VALUES ('x', 'root', 'h')")
    conn.close()


async def test_disabled_admin_does_not_count(tmp_path: Path) -> None:
    store = await Store.open(tmp_path)
    await store.add_user("alice", Role.ADMIN, "h", "cli")
    await store.add_user("root2", Role.ADMIN, "h", "cli")
    await store.close()
    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    conn.execute("UPDATE users SET disabled = 1 WHERE username = 'root2'")
    conn.commit()
    conn.close()
    store = await Store.open(tmp_path)
    assert await store.count_admins() == 1
    with pytest.raises(LastAdmin):
        await store.remove_user("alice", "cli")
    await store.remove_user("root2", "cli")  # a disabled admin may go
    await store.close()


def test_migration_from_previous_version_adds_users(tmp_path: Path) -> None:
    path = tmp_path / DB_FILENAME
    users_version = next(i + 1 for i, (title, _) in enumerate(MIGRATIONS) if title.startswith("users"))
    old = Database(path, target_version=users_version - 1)
    old.append_audit(1.0, "system", "gateway.start", "gw", {})
    old.close()
    conn = sqlite3.connect(path)
    assert "users" not in {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()

    db = Database(path)
    assert db.schema_version() == LATEST_VERSION
    db.add_user("alice", Role.ADMIN, "h", 2.0, "cli")
    assert [u.username for u in db.list_users()] == ["alice"]
    assert db.verify_audit() is None and db.stats()["audit"] == 2
    db.close()
    conn = sqlite3.connect(path)
    columns = {r[1]: (r[2], r[3], r[4]) for r in conn.execute("PRAGMA table_info(users)")}
    conn.close()
    assert columns == {
        "username": ("TEXT", 0, None), "role": ("TEXT", 1, None),
        "password_hash": ("TEXT", 1, None), "created_at": ("REAL", 0, None),
        "updated_at": ("REAL", 0, None), "disabled": ("INTEGER", 0, "0"),
    }


# --- edge user -----------------------------------------------------------------------------

def edge_user(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*edge_command(), "user", *args], input=stdin, capture_output=True,
        text=True, timeout=60, env=edge_env(),
    )


def test_cli_end_to_end(tmp_path: Path) -> None:
    config = str(write_config(tmp_path))
    db_path = tmp_path / "data" / DB_FILENAME
    new_password = "an0ther secret phrase"

    listed = edge_user("list", "--config", config)
    assert listed.returncode == 0 and "no users" in listed.stdout
    assert not db_path.exists()  # listing never creates a database

    done = edge_user("add", "alice", "--role", "admin", "--config", config, "--password-stdin",
                     stdin=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr
    done = edge_user("add", "bob", "--role", "security", "-c", config, "--password-stdin",
                     stdin=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr

    listed = edge_user("list", "--config", config)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["USERNAME", "ROLE", "CREATED", "(UTC)", "DISABLED"]
    assert [line.split()[:2] + line.split()[-1:] for line in lines[1:]] == [
        ["alice", "admin", "no"], ["bob", "security", "no"]]
    assert "argon2" not in listed.stdout

    done = edge_user("passwd", "bob", "--config", config, "--password-stdin",
                     stdin=new_password + "\n")
    assert done.returncode == 0, done.stderr

    refused = edge_user("remove", "alice", "--config", config)
    assert refused.returncode == 1 and "last enabled admin" in refused.stderr
    done = edge_user("remove", "bob", "--config", config)
    assert done.returncode == 0, done.stderr

    db = Database(db_path)
    assert [u.username for u in db.list_users()] == ["alice"]
    alice = db.get_user("alice")
    assert alice is not None and verify_password(alice.password_hash, PASSWORD)[0]
    assert db.verify_audit() is None
    rows = db.db.execute("SELECT actor, action, target, detail FROM audit ORDER BY id").fetchall()
    db.close()
    assert [r[:3] for r in rows] == [
        ("cli", "user.add", "alice"), ("cli", "user.add", "bob"), ("cli", "user.passwd", "bob"),
        ("cli", "user.remove", "bob")]
    assert all("argon2" not in r[3] for r in rows)

    blob = b"".join(p.read_bytes() for p in db_path.parent.glob(DB_FILENAME + "*"))
    for secret in (PASSWORD, new_password):
        assert secret.encode() not in blob


@pytest.mark.parametrize(("args", "stdin", "code", "message"), [
    (["add", "Alice", "--role", "admin"], PASSWORD, 2, "invalid username"),
    (["add", "alice", "--role", "root"], PASSWORD, 2, "invalid choice"),
    (["add", "alice", "--role", "admin"], "short\n", 2, "too short"),
    (["add", "alice", "--role", "admin"], "", 2, "no password on stdin"),
    (["passwd", "nobody"], PASSWORD, 1, "no user named 'nobody'"),
    (["remove", "nobody"], "", 1, "no user named 'nobody'"),
])
def test_cli_refusals(tmp_path: Path, args: list[str], stdin: str, code: int, message: str) -> None:
    config = str(write_config(tmp_path))
    extra = ["--password-stdin"] if args[0] in ("add", "passwd") else []
    done = edge_user(*args, "--config", config, *extra, stdin=stdin)
    assert done.returncode == code, done.stderr
    assert message in done.stderr


def test_cli_duplicate_and_bad_config_and_no_terminal(tmp_path: Path) -> None:
    config = str(write_config(tmp_path))
    assert edge_user("add", "alice", "--role", "viewer", "-c", config, "--password-stdin",
                     stdin=PASSWORD).returncode == 0
    again = edge_user("add", "alice", "--role", "admin", "-c", config, "--password-stdin",
                      stdin=PASSWORD)
    assert again.returncode == 1 and "already exists" in again.stderr
    prompt = edge_user("passwd", "alice", "-c", config, stdin=PASSWORD)
    assert prompt.returncode == 2 and "--password-stdin" in prompt.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("site_id: [\n")
    broken = edge_user("list", "--config", str(bad))
    assert broken.returncode == 2 and "bad.yaml" in broken.stderr
