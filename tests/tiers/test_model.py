"""A hypothesis state machine: set / get / get_many / delete (and L1 eviction) against a dict
model with the monotonic rule, over each backend alone and all three together."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test

from tests.conftest import StackURLs
from tests.tiers.conftest import steady_policy
from tiers import MultiTierCache

pytestmark = pytest.mark.integration

NAMES = st.sampled_from(["a", "b", "c", "d"])


def backend_urls(backend: str, urls: StackURLs) -> tuple[str, ...]:
    return {
        "memory": ("memory://?max_entries=3",),  # smaller than the key space: evictions
        "memcached": (urls.memcached_url,),
        "redis": (urls.redis_url,),
        "all": ("memory://?max_entries=3", urls.memcached_url, urls.redis_url),
    }[backend]


@pytest.mark.parametrize("backend", ["memory", "memcached", "redis", "all"])
def test_cache_behaves_like_a_monotonic_dict(
    backend: str, stack_urls: StackURLs, namespace: str
) -> None:
    urls = backend_urls(backend, stack_urls)
    evicting = backend == "memory"

    class CacheModel(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.loop = asyncio.new_event_loop()
            self.run = uuid.uuid4().hex[:8]  # servers outlive examples: fresh keys each time
            self.cache = MultiTierCache.from_urls(
                *urls, ttl_policy=steady_policy(), timeout_s=2.0, invalidation_channel=None
            )
            self.model: dict[str, tuple[Any, int]] = {}

        def key(self, name: str) -> str:
            return f"{namespace.rstrip('.')}:v2:misc:value:1m:{self.run}:{name}"

        def call(self, coro: Any) -> Any:
            return self.loop.run_until_complete(coro)

        def check(self, name: str, hit: Any) -> None:
            expected = self.model.get(name)
            if hit is None:
                # only an L1-only cache may lose a key (eviction); others must have it
                assert expected is None or evicting, (name, expected)
            else:
                assert expected is not None, (name, hit)
                assert (hit.value, hit.as_of) == expected

        @rule(
            name=NAMES,
            value=st.integers(-(2**63), 2**63 - 1) | st.text(max_size=5),
            as_of=st.integers(1, 9),
        )
        def set(self, name: str, value: Any, as_of: int) -> None:
            written = self.call(
                self.cache.set(self.key(name), value, data_type="default", as_of=as_of)
            )
            current = self.model.get(name)
            newer = current is None or as_of >= current[1]
            if evicting:
                live = self.call(self.cache.get(self.key(name)))
                if live is None or as_of >= live.as_of:
                    self.model[name] = (value, as_of)
                return
            if newer:
                self.model[name] = (value, as_of)
                below = [t.name for t in self.cache.tiers if t.name != "memory"]
                # a full L1's admission filter may keep a new key out; the tiers below take it
                assert [t for t in written if t != "memory"] == below
            else:
                assert written == {}

        @rule(name=NAMES)
        def get(self, name: str) -> None:
            self.check(name, self.call(self.cache.get(self.key(name))))

        @rule(names=st.lists(NAMES, max_size=5))
        def get_many(self, names: list[str]) -> None:
            hits = self.call(self.cache.get_many([self.key(n) for n in names]))
            for name, hit in zip(names, hits, strict=True):
                self.check(name, hit)

        @rule(name=NAMES)
        def delete(self, name: str) -> None:
            self.call(self.cache.delete(self.key(name)))
            self.model.pop(name, None)

        @rule()
        def forget_l1(self) -> None:
            """Another process's view: L1 empty, everything comes from below and is promoted."""
            if not evicting and self.cache.tiers[0].name == "memory":
                self.cache.tiers[0].clear()  # type: ignore[attr-defined]
                self.call(self.cache.drain())

        def teardown(self) -> None:
            self.call(self.cache.close())
            self.loop.close()

    run_state_machine_as_test(
        CacheModel, settings=settings(max_examples=30, stateful_step_count=25, deadline=None)
    )
