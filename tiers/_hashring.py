"""Consistent hashing over memcached servers (ketama: md5 points, virtual nodes).

Adding or removing one server of N moves about 1/N of the keys, so users can scale out.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Sequence


def _points(label: str, count: int) -> list[int]:
    out: list[int] = []
    for i in range((count + 3) // 4):
        digest = hashlib.md5(f"{label}-{i}".encode(), usedforsecurity=False).digest()
        out.extend(int.from_bytes(digest[j : j + 4], "little") for j in (0, 4, 8, 12))
    return out[:count]


class HashRing:
    def __init__(self, servers: Sequence[str], vnodes: int = 160) -> None:
        if not servers:
            raise ValueError("a hash ring needs at least one server")
        self.servers = tuple(servers)
        ring = sorted(
            (point, index)
            for index, server in enumerate(self.servers)
            for point in _points(server, vnodes)
        )
        self._points = [p for p, _ in ring]
        self._owners = [i for _, i in ring]

    def index_for(self, key: bytes) -> int:
        """The index in ``servers`` of the server that owns ``key``."""
        if len(self.servers) == 1:
            return 0
        digest = hashlib.md5(key, usedforsecurity=False).digest()
        pos = bisect.bisect(self._points, int.from_bytes(digest[:4], "little"))
        return self._owners[pos % len(self._owners)]
