"""Check results and the runner that gives every check its own thread and deadline."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"


@dataclass(frozen=True)
class Line:
    """One output line: a status, the check's name and what was found or what to do."""

    status: str
    check: str
    message: str

    def text(self) -> str:
        """The line as printed."""
        return f"{self.status}  {self.check}: {self.message}"


CheckFn = Callable[[], list[Line]]


@dataclass(frozen=True)
class Check:
    """A named check; it returns one or more lines."""

    name: str
    run: CheckFn


def _guarded(check: Check, out: list[Line]) -> None:
    try:
        out.extend(check.run())
    except Exception as err:  # noqa: BLE001 - any bug in one check must not stop the others
        out.append(Line(FAIL, check.name, f"the check itself failed: {type(err).__name__}: {err}"))


def run_checks(checks: list[Check], timeout_s: float) -> tuple[list[Line], bool]:
    """Run the checks at once, each within timeout_s; return their lines in order and whether one hung."""
    slots: list[list[Line]] = [[] for _ in checks]
    # Daemon threads: a check stuck in native code (an RTSP open, a dead NFS mount) cannot be
    # interrupted, but it must not keep the command from answering and exiting.
    threads = [threading.Thread(target=_guarded, args=(check, slot), daemon=True, name=f"doctor-{check.name}")
               for check, slot in zip(checks, slots, strict=True)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout_s
    lines: list[Line] = []
    hung = False
    for check, thread, slot in zip(checks, threads, slots, strict=True):
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            hung = True
            lines.append(Line(FAIL, check.name, f"no answer within {timeout_s:g}s (timed out)"))
        else:
            lines.extend(slot)
    return lines, hung


def summary(lines: list[Line]) -> dict[str, int]:
    """Count the lines per status."""
    return {status: sum(1 for line in lines if line.status == status) for status in (PASS, WARN, FAIL)}
