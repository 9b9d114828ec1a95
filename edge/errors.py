"""The exception tree: one root, small subclasses that carry data."""

from __future__ import annotations

from dataclasses import dataclass


class EdgeError(Exception):
    """Root of every error the gateway raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    """One problem found in a config file, located by line and key path."""

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.path}: {self.message}"


class ConfigError(EdgeError):
    """The config file is invalid; carries every problem found."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class SecretUnavailable(EdgeError):
    """A secret named in the config (env var or file) could not be read."""

    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        self.reason = reason
        super().__init__(f"secret {where}: {reason}")


class DataDirUnusable(EdgeError):
    """The data directory cannot be created or written."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"data dir {path} is not usable: {reason}")


class KeyUnusable(EdgeError):
    """A key file cannot be used (unreadable, or not a key of the expected kind)."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"key file {path}: {reason}")


class StoreError(EdgeError):
    """The SQLite store failed or holds a schema this code cannot use."""


class SchemaTooNew(StoreError):
    """The database was written by a newer release; refusing to touch it."""

    def __init__(self, found: int, supported: int) -> None:
        self.found = found
        self.supported = supported
        super().__init__(
            f"database schema version {found} is newer than this release supports ({supported})"
        )


class RestartBudgetExhausted(EdgeError):
    """A service crashed more often than its restart budget allows."""

    def __init__(self, service: str, restarts: int, window_s: float) -> None:
        self.service = service
        self.restarts = restarts
        self.window_s = window_s
        super().__init__(
            f"service {service!r} crashed {restarts} times within {window_s:g}s; giving up"
        )


class ServiceStuck(EdgeError):
    """A service did not stop when asked (a reload could not replace it)."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        super().__init__(f"service(s) {', '.join(names)} did not stop in time; not replaced "
                         "(restart the daemon: systemctl restart edge)")


class MqttUnavailable(EdgeError):
    """The MQTT broker is not connected right now; the message was not sent."""

    def __init__(self, broker: str) -> None:
        self.broker = broker
        super().__init__(f"MQTT broker {broker} is not connected")


class CommandRejected(EdgeError):
    """A command was refused before it reached a device (bad payload, unknown device or action)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class CommandFailed(EdgeError):
    """A device did not carry out a command (refused it, timed out, or is unreachable)."""

    def __init__(self, status: str, reason: str) -> None:
        self.status = status  # "failed" or "timeout"
        self.reason = reason
        super().__init__(f"{status}: {reason}")


class ModelRefused(EdgeError):
    """A model file or its card cannot be used (unreadable, invalid, or the sha256 differs)."""

    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        self.reason = reason
        super().__init__(f"{where}: {reason}")


class CameraUnavailable(EdgeError):
    """A camera cannot be opened or stopped delivering frames."""

    def __init__(self, camera_id: str, reason: str) -> None:
        self.camera_id = camera_id
        self.reason = reason
        super().__init__(f"camera {camera_id}: {reason}")


class FrameRejected(EdgeError):
    """A frame is unusable (empty, wrong dtype or shape); it is counted and dropped."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
