"""Where a new leader picks the schedule up (pure): continuing the old leader's jobs, a ramp
for the overdue ones, never a burst of every job at once."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from schedules import (
    DEFAULT_PATH,
    JobKey,
    LastWarm,
    jobs,
    last_warms,
    load_config,
    resolve,
    takeover_dues,
)
from topics import DataType
from topics.records import WarmJob

NY = ZoneInfo("America/New_York")
CONFIG = load_config(DEFAULT_PATH)


def at(h: int, mi: int = 0, s: float = 0):  # type: ignore[no-untyped-def]
    from datetime import datetime

    return datetime(2026, 12, 1, h, mi, tzinfo=NY) + timedelta(seconds=s)


def job(
    exchange: str, data_type: str, issued_ms: int, token: int, interval: float = 15.0
) -> WarmJob:
    return WarmJob(
        job_id="j", exchange=exchange, data_type=data_type, symbols=[], phase="market_hours",
        interval_s=interval, issued_ms=issued_ms, deadline_ms=issued_ms + 8000,
        fencing_token=token,
    )  # fmt: skip


def test_the_latest_job_a_poller_took_per_key() -> None:
    t0 = int(at(10).timestamp() * 1000)
    partition = [
        job("binance", "tickers", t0, 3),
        job("binance", "tickers", t0 + 15_000, 4),
        job("binance", "tickers", t0 + 16_000, 3),  # the deposed leader's: dropped by pollers
        job("binance", "books", t0 + 2_000, 4),
        job("binance", "lunch", t0 + 3_000, 4),  # not a data type: ignored
    ]
    got = last_warms([partition, [job("okx", "tickers", t0 + 1_000, 4, 60.0)]])
    assert got == {
        JobKey("binance", DataType.TICKERS): LastWarm(at(10, s=15), 15.0),
        JobKey("binance", DataType.BOOKS): LastWarm(at(10, s=2), 15.0),
        JobKey("okx", DataType.TICKERS): LastWarm(at(10, s=1), 60.0),
    }


def test_a_new_leader_continues_the_old_schedule_and_ramps_only_the_overdue() -> None:
    now = at(11)  # market hours: tickers and books 15 s, candles 30 s
    state = resolve(CONFIG, now)
    keys = jobs(CONFIG)
    # the old leader warmed every job in the last few seconds, spread over 12 s
    last = {k: LastWarm(now - timedelta(seconds=12.5 - 2 * i), 15.0) for i, k in enumerate(keys)}
    overdue = JobKey("okx", DataType.CANDLES)
    last[overdue] = LastWarm(now - timedelta(seconds=40), 30.0)
    del last[JobKey("okx", DataType.BOOKS)]  # never warmed
    dues = takeover_dues(CONFIG, state, last, ramp_s=10)
    assert set(dues) == set(keys)
    for key, warm in last.items():
        if key != overdue:
            assert dues[key] == warm.issued + timedelta(seconds=15)  # its own schedule goes on
    ramped = sorted(dues[k] for k in (overdue, JobKey("okx", DataType.BOOKS)))
    assert ramped == [now, now + timedelta(seconds=5)]  # 2 jobs over 10 s, not at once
    firsts = sorted(dues.values())
    assert len(set(firsts)) == len(firsts)  # no two jobs at the same instant


def test_a_shorter_interval_now_moves_the_continued_job_earlier() -> None:
    now = at(9, 30, 1)  # the open: 15 s now, the old leader published 60 s at 09:29:50
    state = resolve(CONFIG, now)
    key = JobKey("binance", DataType.TICKERS)
    dues = takeover_dues(CONFIG, state, {key: LastWarm(at(9, 29, 50), 60.0)})
    assert dues[key] == now + timedelta(seconds=15)  # min(old due 09:30:50, now + 15 s)


def test_a_cold_start_ramps_every_job_over_at_most_the_ramp() -> None:
    now = at(11)
    dues = takeover_dues(CONFIG, resolve(CONFIG, now), {}, ramp_s=10)
    offsets = sorted((d - now).total_seconds() for d in dues.values())
    assert offsets[0] == 0 and offsets[-1] < 10 and len(set(offsets)) == len(offsets)
