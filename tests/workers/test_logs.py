"""Log lines from several processes sharing one stderr (``warmfleet reader --workers N``, the
supervisor and its workers) stay whole lines: each is one write, never a line broken by
another process's line (the image runs Python unbuffered, PYTHONUNBUFFERED=1)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[2]
LINES = 4000
WRITER = """
import sys
from workers.logs import configure_logging
import structlog
configure_logging("INFO", "json")
log = structlog.get_logger("t")
for i in range(int(sys.argv[1])):
    log.info("line", writer=sys.argv[2], i=i, pad="x" * 60)
"""


def test_lines_of_processes_sharing_stderr_are_never_interleaved(tmp_path: Path) -> None:
    out = tmp_path / "shared.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    with out.open("wb") as shared:  # one file description, as inherited by child workers
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", WRITER, str(LINES), name], stderr=shared, env=env
            )
            for name in ("a", "b", "c")
        ]
        for proc in procs:
            assert proc.wait(60) == 0
    lines = out.read_text().splitlines()
    events = [orjson.loads(line) for line in lines]  # a broken line does not parse
    assert len(events) == 3 * LINES
    for name in ("a", "b", "c"):
        assert [e["i"] for e in events if e["writer"] == name] == list(range(LINES))
