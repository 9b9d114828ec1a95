"""The `edge backup` and `edge restore` commands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from edge.config_loader import load_config
from edge.errors import ConfigError, EdgeError
from edge.store import DB_FILENAME
from edge.store.backup import BackupInfo, backup, default_target, prune_backups, restore

DEFAULT_CONFIG = Path("/etc/edge/edge.yaml")
EXIT_OK, EXIT_FAILURE = 0, 1


def add_parsers(sub: Any) -> None:
    """Add the `backup` and `restore` subcommands."""
    b = sub.add_parser("backup", help="copy the database while the gateway runs",
                       description="Copy the database with SQLite's online backup API; the gateway "
                                   "may keep running.")
    b.add_argument("--config", "-c", type=Path, default=DEFAULT_CONFIG,
                   help=f"path of the YAML config (default {DEFAULT_CONFIG})")
    b.add_argument("--output", "-o", type=Path, default=None,
                   help="backup file (default <data_dir>/backups/edge-<UTC timestamp>.db)")
    b.add_argument("--keep", type=int, default=None, metavar="N",
                   help="afterwards delete all but the newest N backups in the backup's directory "
                        "(edge-*.db; the daily timer keeps 7)")
    r = sub.add_parser("restore", help="put a backup in place of the database (gateway stopped)",
                       description="Replace the database with a backup; the current one is kept "
                                   "beside it as edge.db.before-restore-<UTC timestamp>.")
    r.add_argument("file", type=Path, help="the backup file")
    r.add_argument("--config", "-c", type=Path, default=DEFAULT_CONFIG,
                   help=f"path of the YAML config (default {DEFAULT_CONFIG})")
    r.add_argument("--force", action="store_true",
                   help="replace a database holding newer events than the backup (they are lost)")


def run_backup_cli(args: argparse.Namespace) -> int:
    """Run `edge backup` or `edge restore`; return the exit code."""
    name = f"edge {args.command}"
    try:
        data_dir = load_config(args.config).data_dir
        if args.command == "backup":
            if args.keep is not None and args.keep < 1:
                print(f"{name}: --keep must be at least 1", file=sys.stderr)
                return EXIT_FAILURE
            info = backup(data_dir / DB_FILENAME, args.output or default_target(data_dir))
            _describe(info, "backup written")
            if args.keep is not None:
                for old in prune_backups(info.path.parent, args.keep):
                    print(f"deleted old backup {old}")
        else:
            _restore(args, data_dir)
    except ConfigError as err:
        print(f"{name}: {args.config}: {err.problems[0] if err.problems else err}", file=sys.stderr)
        return EXIT_FAILURE
    except EdgeError as err:  # BackupError (a StoreError) and the rest: one line, no traceback
        print(f"{name}: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as err:
        print(f"{name}: {err.filename or ''}: {err.strerror or err}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(f"\n{name}: cancelled", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def _restore(args: argparse.Namespace, data_dir: Path) -> None:
    info, moved = restore(args.file, data_dir / DB_FILENAME, force=args.force)
    for path in moved:
        print(f"moved aside: {path}")
    _describe(info, f"restored {args.file} to")
    print("start the gateway (systemctl start edge): newer migrations run on start")


def _describe(info: BackupInfo, what: str) -> None:
    print(f"{what} {info.path}")
    print(f"size: {info.bytes} bytes, schema version: {info.schema_version}, events: {info.events}, "
          f"audit records: {info.audit}")
