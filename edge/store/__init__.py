"""The only package that touches SQLite."""

from edge.store.data_dir import prepare_data_dir
from edge.store.schema import LATEST_VERSION
from edge.store.store import DB_FILENAME, Store

__all__ = ["DB_FILENAME", "LATEST_VERSION", "Store", "prepare_data_dir"]
