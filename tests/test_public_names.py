"""Each package's public names, pinned: a name added or dropped is a decision, made here
on purpose (httpx's test_exported_members is the model). Helpers changing a package's
surface change its line below in the same commit."""

from __future__ import annotations

import importlib

import pytest

#: package -> its __all__, whitespace-separated (one block per package, sorted)
PUBLIC: dict[str, str] = {
    "topics": """
        ANALYSIS_OVERVIEW ANALYSIS_SYMBOLS BOOK_FIELDS BrokerUnavailable CANDLES_FIELDS
        CATALOG CONTROL_CLOCK CONTROL_PHASE ConfigError DEAD_LETTER DEFAULT_LIMITS DataType
        EPOCH_FLOOR_MS
        InvalidRecord KEY_PREFIX KEY_SPECS KEY_VERSION KeySpec Limits MARKET_BOOKS
        MARKET_OHLCV MARKET_TICKERS MAX_KEY_BYTES POLLED Rejection TICKER_FIELDS TopicSpec
        WARM_JOBS WarmfleetError book_fields book_record build_key candles_fields
        candles_record check_url data_type_of decode key_for namespace_of now_ms
        phase_change_fields record_bytes redact server_list split_host_port symbol_key
        ticker_fields ticker_record timeframe_ms topic_config validate_key
    """,
    "topics.kafka": """
        BrokerUnavailable drop_namespace ensure_topics start_producer
    """,
    "topics.settings": """
        Rule at_least between check check_fields minimum not_negative positive ruled
    """,
    "topics.tasks": """
        cancel_and_wait
    """,
    "tiers": """
        BreakerState Bus CacheError CacheUnavailable CircuitBreaker CorruptEntry
        DEFAULT_MAX_BYTES DirectCacheAdapter Envelope EpochWatch HashRing HeatRecorder
        HeatView Hit HotSetOptions Kept LEVELS MemcachedTier MemoryTier MultiTierCache
        RedisBus RedisTier StoreItem TTLPolicy Tier TierLevel UnencodableValue ValueTooLarge
        Write check_key decode encode tier_from_url
    """,
    "schedules": """
        Boost CLOCK_HEADER Claim ClockElection ClockError DEFAULT_INTERVALS_S DEFAULT_PATH
        ExchangeWarm Firing HotSetWarm INTERVAL_TYPES IntervalHistory JobKey LastWarm Override
        OverrideLog Phase PhaseCalendar PhaseClock PhaseConfig PhaseState Sessions
        boost_active deadline_s default_path effective_interval jobs last_warms load_config
        next_due parse_config parse_override pick_leader plan_firings published_intervals
        read_latest resolve takeover_dues warm_job
    """,
    "readers": """
        BadRequest OriginWatch Reader ReaderApp ReaderLimits ServerOptions add_server_arguments
        create_app openapi_document running_reader serve server_options
    """,
    "workers": "",
    "workers.agents": """
        CHANGELOGS CandlesView InvalidEvent OVERVIEW_PARTS OverviewAgents PhaseFollower
        Runtime SymbolStore SymbolStream config_intervals decode_book decode_candles
        decode_ticker install
    """,
    "workers.analytics": """
        ALL BREAKOUT_SIGMAS CandleState MOMENTUM_ALPHA OverviewRow SIGNALS TickerState
        TickerView USD_QUOTES VOL_LAMBDA WARMUP_RETURNS atr candle_state change_pct ema
        ewma ewma_variance log_return market_overview observe_ticker overview_row
        overviews quote_of rsi signals spread_bps symbol_analysis true_ranges vwap
    """,
    "workers.pollers": """
        DeadlineExceeded ExchangePoller ExchangeUnavailable GROUP MalformedJob
        MalformedResponse PollResult PollerConfig PollerError PollerService
        RequestFailed SIMULATED client_options parse_job
    """,
    "demand": """
        Ask DEMAND Deltas Demand DemandConfig DemandError DemandUnavailable EarlyRefresh
        FleetState Grant JobPublisher Outcome connect demand_job enabled xfetch_fires
    """,
    "workers.cli": """
        COMMANDS main
    """,
}


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_public_names_are_pinned(package: str) -> None:
    module = importlib.import_module(package)
    assert sorted(module.__all__) == sorted(PUBLIC[package].split())
    assert len(module.__all__) == len(set(module.__all__)), "a name listed twice"


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_every_public_name_exists(package: str) -> None:
    module = importlib.import_module(package)
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []
