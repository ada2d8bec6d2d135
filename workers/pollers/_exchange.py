"""One exchange, polled through ccxt: a warm job in, validated ``topics`` records out.

``ExchangePoller`` owns one ``ccxt.async_support`` client (rate limiting on), loads the
markets once and refreshes them, and turns a ``WarmJob`` into ``Ticker`` / ``Candles`` /
``BookTop`` records. It knows nothing of Kafka (``_service`` is the
shell); what differs between venues is in ``_venues`` and one module per venue.

Failures by ccxt class:

- ``RateLimitExceeded`` / ``DDoSProtection`` (429, 418): the whole exchange pauses for the
  response's ``Retry-After`` (or a backoff when it had none), then the request is retried;
- ``NetworkError`` (``RequestTimeout``, ``ExchangeNotAvailable`` ...) and ``OperationFailed``:
  retried with exponential backoff and full jitter, never past the job's deadline; each
  failure feeds the exchange's circuit breaker;
- ``BadSymbol`` / ``ExchangeError``: not retried, counted;
- anything else ccxt raises while parsing a garbage body: counted as a rejected payload.

While the breaker is open, requests fail at once (``ExchangeUnavailable``) and jobs for the
exchange are dropped and counted; other exchanges have their own poller and breaker.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import ccxt
import ccxt.async_support as ccxt_async
import structlog

from tiers import CircuitBreaker
from topics import (
    DEFAULT_LIMITS,
    POLLED,
    ConfigError,
    DataType,
    Limits,
    Rejection,
    WarmfleetError,
    book_record,
    candles_record,
    ticker_record,
)
from topics.records import BookTop, Candles, Ticker, WarmJob
from workers.pollers import _metrics as metrics
from workers.pollers import _origin
from workers.pollers._backoff import Backoff
from workers.pollers._venues import client_options

log = structlog.get_logger(__name__)
T = TypeVar("T")
Record = Ticker | Candles | BookTop


class PollerError(WarmfleetError):
    """Base of the pollers' errors."""


class ExchangeUnavailable(PollerError):
    """The exchange's circuit breaker is open: requests are not being sent."""


class DeadlineExceeded(PollerError):
    """The job's deadline passed before the request could be (re)tried."""


class RequestFailed(PollerError):
    """A request failed for good (not retryable, or out of attempts); ``error`` is the
    ccxt class name."""

    def __init__(self, error: str, detail: str) -> None:
        self.error = error
        super().__init__(f"{error}: {detail}")


class MalformedResponse(PollerError):
    """ccxt could not make sense of a response body (it raised a non-ccxt error)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class PollerConfig:
    #: ccxt's ``rateLimit`` in ms between request-weight units; None keeps ccxt's default
    rate_limit_ms: float | None = None
    timeout_ms: int = 10_000  # per request (ccxt ``timeout``)
    markets_refresh_s: float = 3_600.0
    candles_timeframe: str = "1m"
    candles_limit: int = 60
    book_depth: int = 10
    concurrency: int = 8  # per-symbol requests in flight within one job
    max_attempts: int = 4
    backoff_base_s: float = 0.25
    backoff_cap_s: float = 10.0
    breaker_threshold: int = 5
    breaker_cooldown_s: float = 30.0
    #: the record contract's bounds (``WARMFLEET_CONTRACT_*``), the same the agents apply
    limits: Limits = DEFAULT_LIMITS


@dataclass(slots=True)
class PollResult:
    exchange: str
    data_type: str
    records: list[Record] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # symbol (or "*") -> error
    dropped: str | None = None  # reason the job was not polled at all

    @property
    def outcome(self) -> str:
        if self.dropped:
            return "dropped"
        if not self.failed and not self.rejected:
            return "complete"
        return "partial" if self.records else "failed"


# -- Retry-After: ccxt raises without the response headers, so the client notes them ------


@dataclass(slots=True)
class _ResponseNote:
    retry_after_s: float | None = None


_NOTE: contextvars.ContextVar[_ResponseNote | None] = contextvars.ContextVar(
    "warmfleet_ccxt_note", default=None
)


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    for name, value in (headers or {}).items():
        if name.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                return None  # an HTTP-date: rare on exchanges; fall back to backoff
    return None


def _client_class(exchange_id: str) -> type[Any]:
    base = getattr(ccxt_async, exchange_id, None)
    if base is None or not isinstance(base, type):
        raise ConfigError("exchange", exchange_id, "is not a ccxt exchange id")

    class Client(base):  # type: ignore[misc, valid-type]
        def handle_errors(self, code: int, reason: str, url: str, method: str,
                          headers: Any, body: Any, *rest: Any) -> Any:  # fmt: skip
            note = _NOTE.get()
            if note is not None and code in (418, 429, 503):
                note.retry_after_s = _retry_after(headers)
            return super().handle_errors(code, reason, url, method, headers, body, *rest)

    Client.__name__ = f"Warmfleet{base.__name__}"
    return Client


class ExchangePoller:
    """Polls one exchange. Safe for concurrent ``poll`` calls (one client, one limiter)."""

    def __init__(
        self,
        exchange_id: str,
        *,
        url: str | None = None,
        config: PollerConfig | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.exchange = exchange_id
        self.config = config or PollerConfig()
        self.url = url
        self._clock = clock
        self._sleep = sleep
        self.client: Any = _client_class(exchange_id)(client_options(exchange_id, url, self.config))
        self.breaker = CircuitBreaker(
            exchange_id,
            failure_threshold=self.config.breaker_threshold,
            cooldown_s=self.config.breaker_cooldown_s,
            clock=clock,
            kind="exchange",
        )
        self.backoff = Backoff(self.config.backoff_base_s, self.config.backoff_cap_s)
        self._markets_at: float | None = None
        self._markets_lock = asyncio.Lock()
        self._paused_until = 0.0  # Retry-After: no request goes out before this
        self._log = log.bind(exchange=exchange_id)
        metrics.BREAKER_OPEN.labels(exchange_id).set(0)

    async def close(self) -> None:
        _origin.forget(self.exchange)
        await self.client.close()

    # -- requests ---------------------------------------------------------------------------

    async def _call(
        self, endpoint: str, deadline: float, fn: Callable[..., Awaitable[T]], *args: Any
    ) -> T:
        attempt = 0
        while True:
            now = self._clock()
            wait = self._paused_until - now
            if wait > 0:
                if now + wait >= deadline:
                    raise DeadlineExceeded(f"{endpoint}: paused by Retry-After past the deadline")
                await self._sleep(wait)
                now = self._clock()
            if now >= deadline:
                raise DeadlineExceeded(f"{endpoint}: deadline passed")
            if not self.breaker.allow():
                metrics.ERRORS.labels(self.exchange, "BreakerOpen").inc()
                raise ExchangeUnavailable(f"{self.exchange} circuit breaker is open")
            note = _ResponseNote()
            token = _NOTE.set(note)
            metrics.REQUESTS.labels(self.exchange, endpoint).inc()
            started = time.perf_counter()
            try:
                async with asyncio.timeout(deadline - now):
                    result = await fn(*args)
            except (ccxt.RateLimitExceeded, ccxt.DDoSProtection) as exc:
                error, retry_after = type(exc).__name__, note.retry_after_s
                if retry_after is None:
                    retry_after = self.backoff.delay(attempt)
                self._paused_until = max(self._paused_until, self._clock() + retry_after)
                self._log.warning("exchange_rate_limited", endpoint=endpoint, error=error,
                                  retry_after_s=retry_after, attempt=attempt)  # fmt: skip
                delay = 0.0  # the pause above is the wait
            except (ccxt.NetworkError, ccxt.OperationFailed) as exc:
                error, delay = type(exc).__name__, self.backoff.delay(attempt)
                self._failure(endpoint, error)
            except asyncio.CancelledError:
                self.breaker.abandon()  # no verdict on the exchange: free a half-open probe
                raise
            except TimeoutError:  # our deadline, not ccxt's timeout
                self.breaker.abandon()
                metrics.ERRORS.labels(self.exchange, "DeadlineExceeded").inc()
                raise DeadlineExceeded(f"{endpoint}: deadline passed mid-request") from None
            except ccxt.BaseError as exc:  # BadSymbol, ExchangeError ...: not retryable
                self.breaker.success()  # the exchange answered
                metrics.ERRORS.labels(self.exchange, type(exc).__name__).inc()
                raise RequestFailed(type(exc).__name__, str(exc)[:200]) from exc
            except Exception as exc:  # ccxt choking on a garbage body
                self.breaker.success()
                metrics.ERRORS.labels(self.exchange, "MalformedResponse").inc()
                raise MalformedResponse(f"{endpoint}: {type(exc).__name__}: {exc}") from exc
            else:
                self.breaker.success()
                metrics.BREAKER_OPEN.labels(self.exchange).set(0)
                return result
            finally:
                _NOTE.reset(token)
                metrics.REQUEST_SECONDS.labels(self.exchange, endpoint).observe(
                    time.perf_counter() - started
                )
            metrics.ERRORS.labels(self.exchange, error).inc()
            attempt += 1
            if attempt >= self.config.max_attempts:
                raise RequestFailed(error, f"{endpoint}: gave up after {attempt} attempts")
            if self._clock() + delay >= deadline:
                raise DeadlineExceeded(f"{endpoint}: no time left to retry after {error}")
            if delay > 0:
                await self._sleep(delay)

    def _failure(self, endpoint: str, error: str) -> None:
        # the breaker logs exchange_breaker_open itself
        if self.breaker.failure(f"{endpoint}: {error}"):
            metrics.BREAKER_OPEN.labels(self.exchange).set(1)
            _origin.opened(self.exchange, self.breaker)  # readers serve its keys stale-if-error

    # -- markets ----------------------------------------------------------------------------

    async def markets(self, deadline: float) -> dict[str, Any]:
        """The exchange's markets, loaded once and refreshed every ``markets_refresh_s``."""
        async with self._markets_lock:
            now = self._clock()
            stale = self._markets_at is None or (
                now - self._markets_at >= self.config.markets_refresh_s
            )
            if stale:
                reload = self._markets_at is not None
                markets: dict[str, Any] = await self._call(
                    "markets", deadline, self.client.load_markets, reload
                )
                if not markets:
                    raise MalformedResponse("load_markets returned no markets")
                self._markets_at = now
                self._log.info("markets_loaded", markets=len(markets), reload=reload)
            return dict(self.client.markets)

    def _symbols(self, job: WarmJob, markets: Mapping[str, Any], result: PollResult) -> list[str]:
        """The job's symbols that are listed and trading (all of them for an empty list)."""
        if not job.symbols:
            active = [s for s, m in markets.items() if m.get("spot") and m.get("active")]
            return sorted(active)
        wanted = []
        for symbol in dict.fromkeys(job.symbols):
            market = markets.get(symbol)
            if market is None:
                self._reject(result, Rejection(symbol, "unknown_symbol"))
            elif market.get("active") is False:
                self._reject(result, Rejection(symbol, "inactive_market"))
            else:
                wanted.append(symbol)
        return wanted

    # -- jobs -------------------------------------------------------------------------------

    async def poll(self, job: WarmJob) -> PollResult:
        """Fetch what ``job`` asks for. Never raises for exchange trouble: the result says
        what was fetched, what was rejected, what failed and why (and the metrics count it)."""
        result = await self._poll(job)
        if result.dropped:
            metrics.JOBS_DROPPED.labels(self.exchange, result.dropped).inc()
            self._log.warning("job_dropped", job_id=job.job_id, data_type=job.data_type,
                              reason=result.dropped, interval_s=job.interval_s)  # fmt: skip
        else:
            metrics.JOBS_DONE.labels(self.exchange, job.data_type, result.outcome).inc()
            if result.failed:
                self._log.warning("job_incomplete", job_id=job.job_id, data_type=job.data_type,
                                  interval_s=job.interval_s, failed=len(result.failed),
                                  records=len(result.records),
                                  error=next(iter(result.failed.values()))[:200])  # fmt: skip
        return result

    async def _poll(self, job: WarmJob) -> PollResult:
        result = PollResult(job.exchange, job.data_type)
        deadline = job.deadline_ms / 1000.0
        if self._clock() >= deadline:
            result.dropped = "deadline"
            return result
        if DataType.parse(job.data_type) not in POLLED:
            result.dropped = "bad_data_type"
            return result
        try:
            markets = await self.markets(deadline)
        except ExchangeUnavailable:
            result.dropped = "breaker_open"
            return result
        except DeadlineExceeded:
            result.dropped = "deadline"
            return result
        except PollerError as exc:
            result.failed["*"] = str(exc)
            return result
        symbols = self._symbols(job, markets, result)
        if not symbols:
            return result
        if job.data_type == DataType.TICKERS:
            await self._tickers(symbols, bool(job.symbols), deadline, result)
        else:
            await self._per_symbol(job.data_type, symbols, deadline, result)
        if (
            result.failed
            and not result.records
            and all("circuit breaker" in e for e in result.failed.values())
        ):
            result.dropped = "breaker_open"
        return result

    async def _tickers(
        self, symbols: list[str], listed: bool, deadline: float, result: PollResult
    ) -> None:
        # one request for all of them: Binance ``symbols=[...]`` (or all), OKX instType=SPOT
        try:
            raw = await self._call(
                "fetch_tickers", deadline, self.client.fetch_tickers, symbols if listed else None
            )
        except MalformedResponse as exc:
            self._reject_all(result, symbols, "malformed_response", str(exc))
            return
        except PollerError as exc:
            result.failed["*"] = str(exc)
            return
        received = int(self._clock() * 1000)
        if not isinstance(raw, Mapping):
            self._reject_all(result, symbols, "malformed_response", type(raw).__name__)
            return
        for symbol in symbols:
            record = ticker_record(
                self.exchange, symbol, raw.get(symbol), received, self.config.limits
            )
            self._keep(record, result)

    async def _per_symbol(
        self, data_type: str, symbols: list[str], deadline: float, result: PollResult
    ) -> None:
        gate = asyncio.Semaphore(self.config.concurrency)
        cfg = self.config

        async def one(symbol: str) -> None:
            async with gate:
                try:
                    if data_type == DataType.CANDLES:
                        raw = await self._call("fetch_ohlcv", deadline, self.client.fetch_ohlcv,
                                               symbol, cfg.candles_timeframe, None,
                                               cfg.candles_limit)  # fmt: skip
                        received = int(self._clock() * 1000)
                        record: Record | Rejection = candles_record(
                            self.exchange,
                            symbol,
                            cfg.candles_timeframe,
                            raw,
                            received,
                            cfg.limits,
                        )
                    else:
                        raw = await self._call("fetch_order_book", deadline,
                                               self.client.fetch_order_book, symbol,
                                               cfg.book_depth)  # fmt: skip
                        received = int(self._clock() * 1000)
                        record = book_record(
                            self.exchange, symbol, raw, cfg.book_depth, received, cfg.limits
                        )
                except MalformedResponse:
                    record = Rejection(symbol, "malformed_response")  # logged by _keep
                except PollerError as exc:
                    result.failed[symbol] = str(exc)
                    return
                self._keep(record, result)

        await asyncio.gather(*(one(s) for s in symbols))

    def _keep(self, record: Record | Rejection, result: PollResult) -> None:
        if isinstance(record, Rejection):
            self._reject(result, record)
        else:
            result.records.append(record)

    def _reject(self, result: PollResult, rejection: Rejection) -> None:
        result.rejected.append(rejection)
        metrics.PAYLOADS_REJECTED.labels(self.exchange, rejection.reason).inc()
        self._log.warning("payload_rejected", symbol=rejection.symbol, reason=rejection.reason)

    def _reject_all(self, result: PollResult, symbols: list[str], reason: str, detail: str) -> None:
        """A whole bulk response was garbage: one rejection per symbol, one log line."""
        result.rejected.extend(Rejection(s, reason) for s in symbols)
        metrics.PAYLOADS_REJECTED.labels(self.exchange, reason).inc(len(symbols))
        self._log.warning("payload_rejected", symbols=len(symbols), reason=reason,
                          detail=detail[:200])  # fmt: skip
