"""The live progress line (rich) while a run goes, on stderr."""

from __future__ import annotations

import time
from types import TracebackType

import numpy as np
from rich.console import Console
from rich.live import Live
from rich.text import Text

from ab._runner import Runner


class Progress:
    def __init__(self, duration_s: float, *, live: bool = True) -> None:
        self.duration_s = duration_s
        self.console = Console(stderr=True)
        if not self.console.is_terminal:  # a log file: one line per status, never wrapped
            self.console = Console(stderr=True, width=400)
        self.live = Live(console=self.console, refresh_per_second=4, transient=True) if (
            live and self.console.is_terminal
        ) else None  # fmt: skip
        self._last_line = 0.0

    def __enter__(self) -> Progress:
        if self.live is not None:
            self.live.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.live is not None:
            self.live.stop()

    def say(self, message: str) -> None:
        self.console.print(f"warmfleet ab: {message}", highlight=False)

    def line(self, runner: Runner) -> str:
        reads = runner.reads
        n = len(reads)
        arms = np.asarray(reads.arm[:n])
        tiers = np.asarray(reads.tier[:n])
        lat = np.asarray(reads.latency_s[:n]) * 1000
        if runner.elapsed < 0:
            return f"warm-up load, measuring in {-runner.elapsed:.0f} s"
        parts = [f"{runner.elapsed:5.1f}/{self.duration_s:g} s"]
        for arm in ("direct", "multitier"):
            sel = arms == arm
            count = int(sel.sum())
            if not count:
                parts.append(f"{arm} 0 reads")
                continue
            recent = lat[sel][-2000:]
            hit = np.isin(tiers[sel], ("memory", "memcached", "redis")).mean() * 100
            parts.append(
                f"{arm} {count:,} reads, hit {hit:.2f} %, p95 {np.percentile(recent, 95):.2f} ms, "
                f"origin {int((tiers[sel] == 'origin').sum())}"
            )
        return "  |  ".join(parts)

    def counts(self, elapsed: float, per_arm: dict[str, tuple[int, int, int]]) -> None:
        """The live line of arms in their own processes: reads, hits, origin reads."""
        if elapsed < 0:
            line = f"warm-up load, measuring in {-elapsed:.0f} s"
        else:
            parts = [f"{elapsed:5.1f}/{self.duration_s:g} s"]
            for arm, (reads, hits, origin) in per_arm.items():
                hit = 100.0 * hits / reads if reads else 0.0
                parts.append(f"{arm} {reads:,} reads, hit {hit:.2f} %, origin {origin}")
            line = "  |  ".join(parts)
        self._show(line)

    def _show(self, line: str) -> None:
        if self.live is not None:
            self.live.update(Text(line))
        elif time.monotonic() - self._last_line >= 5.0:
            self._last_line = time.monotonic()
            self.console.print(line, highlight=False)

    def update(self, runner: Runner) -> None:
        if self.live is not None or time.monotonic() - self._last_line >= 5.0:
            self._show(self.line(runner))
