"""Campus edge controller: one daemon per classroom gateway box."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("campus-edge")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
