"""Demand ticker jobs coalesced: one ticker request per exchange for every demand job
waiting at that moment (Binance ``ticker/24hr?symbols=[...]``, OKX's SPOT tickers), so a
flood of cold ticker keys costs one origin request — and one budget token — per round, not
one per symbol. Each job still gets (and publishes, and commits) only its own records."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from topics.records import WarmJob
from workers.pollers._exchange import ExchangePoller, PollResult

#: symbols per coalesced request (Binance takes up to 100 in ``symbols=[...]``)
MAX_SYMBOLS = 100


class TickerCoalescer:
    def __init__(
        self, poller: ExchangePoller, slot: Callable[[], AbstractAsyncContextManager[None]]
    ) -> None:
        self.poller, self.slot = poller, slot
        self._pending: list[tuple[WarmJob, asyncio.Future[PollResult]]] = []
        self._runner: asyncio.Task[None] | None = None
        self.rounds = 0

    async def poll(self, job: WarmJob) -> PollResult:
        fut: asyncio.Future[PollResult] = asyncio.get_running_loop().create_future()
        self._pending.append((job, fut))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run(), name=f"coalesce-{job.exchange}")
        return await fut

    async def _run(self) -> None:
        while self._pending:
            async with self.slot():  # one of the exchange's job slots, demand first
                batch: list[tuple[WarmJob, asyncio.Future[PollResult]]] = []
                symbols: set[str] = set()
                while self._pending and len(symbols) < MAX_SYMBOLS:
                    job, fut = self._pending.pop(0)
                    batch.append((job, fut))
                    symbols.update(job.symbols)
                merged = batch[0][0].derive(
                    job_id=f"{batch[0][0].job_id}+{len(batch) - 1}",
                    symbols=sorted(symbols),
                    deadline_ms=max(job.deadline_ms for job, _ in batch),
                )
                self.rounds += 1
                try:
                    result = await self.poller.poll(merged)
                except BaseException as exc:  # a bug, or cancelled: every job of it learns
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
            for job, fut in batch:
                if not fut.done():
                    fut.set_result(_share(result, job))


def _share(result: PollResult, job: WarmJob) -> PollResult:
    """The part of a coalesced result that answers ``job``."""
    wanted = set(job.symbols)
    return PollResult(
        job.exchange, job.data_type,
        records=[r for r in result.records if r.symbol in wanted],
        rejected=[r for r in result.rejected if r.symbol in wanted],
        failed={s: e for s, e in result.failed.items() if s in wanted or s == "*"},
        dropped=result.dropped,
    )  # fmt: skip
