"""Which offsets this worker has really processed, so a commit never runs ahead of them.

Faust's stream acks an event it *skips* (one read while flow control is suspended at
shutdown or rebalance, or from an older consumer generation), and the commit that follows
(``wait_empty`` on SIGTERM, or the next interval) then includes offsets no agent handled.
The agents record what they finished; the consumer clamps every commit to it
(``_Consumer._commit``).

Events fetched around a rebalance and then dropped (the rest of a fetched batch, or the
agents' queues cleared when flow control resumes) are fetched again from the committed
offsets: ``_Consumer.perform_seek`` in ``workers/app.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from faust.types import TP, EventT


class Progress:
    def __init__(self) -> None:
        #: topics whose commits are clamped (the agents' source topics)
        self.guarded: set[str] = set()
        #: (topic, partition) -> (consumer generation, next offset to process)
        self._next: dict[tuple[str, int], tuple[int | None, int]] = {}

    def guard(self, *topics: str) -> None:
        self.guarded.update(topics)

    def mark(self, events: Sequence[EventT[Any]]) -> None:
        """``events`` are fully handled (written, published or dead-lettered)."""
        nxt = self._next
        for event in events:
            m = event.message
            key = (m.topic, m.partition)
            held = nxt.get(key)
            if held is None or held[0] != m.generation_id or m.offset >= held[1]:
                nxt[key] = (m.generation_id, m.offset + 1)

    def clamp(self, offsets: Mapping[TP, int], generation: int) -> dict[TP, int]:
        """``offsets`` (next offset to read, per partition) no further than processed in
        this generation; guarded partitions with nothing processed yet are left out."""
        out: dict[TP, int] = {}
        for tp, offset in offsets.items():
            if tp.topic not in self.guarded:
                out[tp] = offset
                continue
            held = self._next.get((tp.topic, tp.partition))
            if held is not None and held[0] == generation:
                out[tp] = min(offset, held[1])
        return out
