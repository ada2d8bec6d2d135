"""The invalidation bus over Redis pub/sub (single node, TLS or Cluster)."""

from __future__ import annotations

import contextlib
import itertools
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from tiers._errors import CacheUnavailable
from tiers._redis import CONNECTION_LOST, DRIVER_ERRORS, mapped


class _RedisSubscription:
    def __init__(self, pubsub: PubSub, owner: Redis | None = None) -> None:
        self._pubsub = pubsub
        self._owner = owner  # a client made for this subscription alone (cluster node)

    async def next(self, timeout_s: float) -> bytes | None:
        with mapped("bus", "listen"):
            message = await self._pubsub.get_message(
                ignore_subscribe_messages=True, timeout=timeout_s
            )
        if message is None or message.get("type") != "message":
            return None
        return bytes(message["data"])

    async def close(self) -> None:
        with contextlib.suppress(*DRIVER_ERRORS):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
            if self._owner is not None:
                await self._owner.aclose()


class RedisBus:
    """Redis pub/sub on one channel. On a Cluster, PUBLISH reaches every node, so the
    subscriber listens on ONE node — the next known node at each (re)subscription, so the
    bus outlives the seed node it was configured with."""

    name = "bus"

    def __init__(
        self,
        client: Redis | RedisCluster,
        channel: str,
        url: str = "",
        *,
        owns_client: bool = False,
    ) -> None:
        """``url`` is needed for a Cluster (the subscriber's nodes); ``owns_client``: close
        the client with the bus (a Redis tier's client is the tier's to close)."""
        self.client = client
        self.channel = channel
        self.owns_client = owns_client
        self._url = url  # for cluster nodes: the scheme, credentials and TLS options
        self._node_turn = itertools.count()
        self._publish_node = 0  # cluster: the primary that took the last announcement

    def __repr__(self) -> str:
        return f"RedisBus(channel={self.channel!r})"  # the URL may hold a password

    async def publish(self, payload: bytes) -> None:
        with mapped("bus", "publish"):
            if isinstance(self.client, RedisCluster):
                await self._publish_on_a_live_node(self.client, payload)
                return
            try:
                await self.client.publish(self.channel, payload)
            except CONNECTION_LOST:
                # a pooled connection that died with the server (restart): once more on a
                # fresh one, or the first announcement after a restart would be lost
                await self.client.connection_pool.disconnect(inuse_connections=False)
                await self.client.publish(self.channel, payload)

    async def _publish_on_a_live_node(self, cluster: RedisCluster, payload: bytes) -> None:
        """PUBLISH on any node reaches every node. redis-py sends it to its default node,
        the first primary it knows — a dead seed stays one (no replica took its slots), so
        every announcement failed while it was down. Instead: the node that took the last
        one, else the next primary that answers."""
        nodes = cluster.get_primaries() or cluster.get_nodes()
        if not nodes:
            await cluster.publish(self.channel, payload)  # not initialised yet: it routes
            return
        first = self._publish_node % len(nodes)
        for turn in range(len(nodes)):
            index = (first + turn) % len(nodes)
            try:
                await cluster.execute_command(
                    "PUBLISH", self.channel, payload, target_nodes=nodes[index]
                )
            except CONNECTION_LOST:
                if turn == len(nodes) - 1:
                    raise
                continue
            self._publish_node = index
            return

    async def subscribe(self) -> _RedisSubscription:
        owner: Redis | None = None
        if isinstance(self.client, RedisCluster):
            # redis-py's cluster pub/sub does not survive a reconnect loop: a plain
            # connection to one node, the next one each time
            owner = Redis.from_url(self._node_url(), retry=Retry(NoBackoff(), 0))
            subscription = _RedisSubscription(owner.pubsub(), owner)
        else:
            subscription = _RedisSubscription(self.client.pubsub())
        try:
            with mapped("bus", "subscribe"):
                await subscription._pubsub.subscribe(self.channel)
        except CacheUnavailable:
            await subscription.close()
            raise
        return subscription

    def _node_url(self) -> str:
        assert isinstance(self.client, RedisCluster)
        nodes = self.client.get_nodes()
        if not nodes:
            return self._url
        node = nodes[next(self._node_turn) % len(nodes)]
        parts = urlsplit(self._url)
        userinfo, at, _hostport = parts.netloc.rpartition("@")
        return parts._replace(netloc=f"{userinfo}{at}{node.host}:{node.port}").geturl()

    async def close(self) -> None:
        if self.owns_client:
            with contextlib.suppress(*DRIVER_ERRORS):
                await self.client.aclose()

    @classmethod
    def from_url(cls, url: str, channel: str) -> RedisBus:
        """A bus on a Redis of its own (``redis://``; not a cluster)."""
        client = Redis.from_url(url, retry=Retry(NoBackoff(), 0))
        return cls(client, channel, url, owns_client=True)
