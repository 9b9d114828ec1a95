"""`edge user`: add, re-password, remove and list local console users."""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from edge.config_loader import load_config
from edge.errors import ConfigError, EdgeError
from edge.store import DB_FILENAME, prepare_data_dir
from edge.store.database import Database
from edge.users import (
    InvalidUserInput,
    Role,
    UnknownUser,
    UserError,
    check_password,
    hash_password,
    validate_username,
)

# The same codes as edge.app, which is not imported: it drags in the whole daemon.
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_INPUT = 2
ACTOR = "cli"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the `user` subcommand and its actions."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", "-c", type=Path, required=True, help="path of the YAML config")
    secret = argparse.ArgumentParser(add_help=False)
    secret.add_argument("--password-stdin", action="store_true",
                        help="read the password as one line from stdin instead of prompting")
    user = sub.add_parser(
        "user", help="manage local console users",
        description="Manage local console users. Every change is written to the audit log.")
    actions = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    add = actions.add_parser("add", parents=[common, secret], help="add a user",
                             description="Add a user; the password is prompted for twice.")
    add.add_argument("name", help="username: 1-32 of a-z 0-9 _ . -, starting with a letter")
    add.add_argument("--role", required=True, choices=[r.value for r in Role], help="the user's role")
    passwd = actions.add_parser("passwd", parents=[common, secret], help="set a user's password",
                                description="Set a user's password.")
    passwd.add_argument("name", help="username")
    remove = actions.add_parser("remove", parents=[common], help="remove a user",
                                description="Remove a user; the last enabled admin cannot be removed.")
    remove.add_argument("name", help="username")
    actions.add_parser("list", parents=[common], help="list users",
                       description="List users: name, role, created (UTC), disabled.")


def run_user(args: argparse.Namespace) -> int:
    """Run an `edge user` action; return 0 ok, 1 failure, 2 bad input or config."""
    try:
        config = load_config(args.config)
    except ConfigError as err:
        for problem in err.problems:
            print(problem, file=sys.stderr)
        return EXIT_INPUT
    try:
        _ACTIONS[args.user_command](args, config.data_dir)
    except InvalidUserInput as err:
        print(f"edge user: {err}", file=sys.stderr)
        return EXIT_INPUT
    except (KeyboardInterrupt, EOFError):
        print("\nedge user: cancelled", file=sys.stderr)
        return EXIT_FAILURE
    except EdgeError as err:  # UserError, StoreError, DataDirUnusable
        print(f"edge user: {err}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def _add(args: argparse.Namespace, data_dir: Path) -> None:
    name = validate_username(args.name)
    role = Role(args.role)
    with _database(data_dir) as db:
        if db.get_user(name) is not None:
            raise UserError(f"user {name!r} already exists (use `edge user passwd` to change it)")
        password_hash = hash_password(_read_password(args, name))
        db.add_user(name, role, password_hash, time.time(), ACTOR)
    print(f"added user {name!r} with role {role}")


def _passwd(args: argparse.Namespace, data_dir: Path) -> None:
    name = args.name
    with _existing_database(data_dir) as db:
        if db is None or db.get_user(name) is None:
            raise UnknownUser(name)
        password_hash = hash_password(_read_password(args, name))
        db.set_password(name, password_hash, time.time(), ACTOR)
    print(f"password of {name!r} changed")


def _remove(args: argparse.Namespace, data_dir: Path) -> None:
    name = args.name
    with _existing_database(data_dir) as db:
        if db is None:
            raise UnknownUser(name)
        db.remove_user(name, time.time(), ACTOR)
    print(f"removed user {name!r}")


def _list(args: argparse.Namespace, data_dir: Path) -> None:
    with _existing_database(data_dir) as db:
        users = db.list_users() if db is not None else []
    if not users:
        print("no users")
        return
    width = max(len("USERNAME"), *(len(u.username) for u in users))
    print(f"{'USERNAME':<{width}}  {'ROLE':<8}  {'CREATED (UTC)':<19}  DISABLED")
    for u in users:
        print(f"{u.username:<{width}}  {u.role:<8}  {_when(u.created_at):<19}  "
              f"{'yes' if u.disabled else 'no'}")


_ACTIONS: dict[str, Callable[[argparse.Namespace, Path], None]] = {
    "add": _add, "passwd": _passwd, "remove": _remove, "list": _list,
}


@contextmanager
def _database(data_dir: Path) -> Iterator[Database]:
    """Open the gateway database, creating the data dir and file if needed."""
    prepare_data_dir(data_dir)
    # The daemon may hold the same file open: WAL lets this second connection in, and
    # every write here is one short transaction.
    db = Database(data_dir / DB_FILENAME)
    try:
        yield db
    finally:
        db.close()


@contextmanager
def _existing_database(data_dir: Path) -> Iterator[Database | None]:
    """Open the gateway database, or yield None when there is none yet."""
    # Only `add` creates the database: a typo in data_dir must not leave stray files.
    if not (data_dir / DB_FILENAME).exists():
        yield None
        return
    with _database(data_dir) as db:
        yield db


def _read_password(args: argparse.Namespace, username: str) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        if not line:
            raise InvalidUserInput("no password on stdin")
        password = line.rstrip("\r\n")  # only the line end: other whitespace is part of it
    else:
        if not sys.stdin.isatty():
            raise InvalidUserInput("stdin is not a terminal: use --password-stdin")
        password = getpass.getpass("New password: ")
        check_password(password, username)  # before the repeat, so a bad one fails fast
        if getpass.getpass("Repeat password: ") != password:
            raise InvalidUserInput("the passwords do not match")
    check_password(password, username)
    return password


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")
