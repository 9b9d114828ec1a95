"""kill -9 a writer mid-stream: the file stays sound and every reported commit is there."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edge.store import DB_FILENAME, Store

WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from edge.events import Reading, SafetyEvent, Severity
    from edge.store import Store

    async def main():
        store = await Store.open(Path(sys.argv[1]))
        i = 0
        while True:
            i += 1
            await store.add_readings([Reading("d", "co2", float(i), "ppm", float(i))] * 20)
            env = await store.add_event(SafetyEvent("panic_button", Severity.CRITICAL, float(i), "t"))
            print(env.seq, flush=True)  # reported only after the commit returned

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("kill_after", [5, 60, 240])
async def test_kill_9_mid_stream_loses_nothing_reported(tmp_path: Path, kill_after: int) -> None:
    for _round in range(2):  # the second round also proves seq resumes past the first
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        reported = [int(proc.stdout.readline()) for _ in range(kill_after)]
        proc.kill()
        proc.wait(timeout=10)
        reported += [int(line) for line in proc.stdout.read().split()]

        conn = sqlite3.connect(tmp_path / DB_FILENAME)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = {r[0] for r in conn.execute("SELECT seq FROM events")}
        queued = {r[0] for r in conn.execute("SELECT seq FROM outbox WHERE msg_class='event'")}
        conn.close()
        assert set(reported) <= stored
        assert stored == queued  # an event is never stored without its outbox row

    store = await Store.open(tmp_path)
    from edge.events import SafetyEvent, Severity

    nxt = await store.add_event(SafetyEvent("smoke_alarm", Severity.CRITICAL, 0.0, "t"))
    assert nxt.seq > max(stored)
    assert len(stored) == max(stored)  # no gaps: a killed transaction consumed no seq
    await store.close()
