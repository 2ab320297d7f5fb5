"""Topic names of the pipeline. Every name derives from one prefix, so a test
run (or a second deployment on a shared cluster) can use its own set."""

from __future__ import annotations

import re
from collections.abc import Iterable

import msgspec

DEFAULT_PREFIX = "kinfer"
DEFAULT_REGIONS = ("us-west", "eu-central", "ap-southeast")

HEARTBEATS = "heartbeats"
"""MirrorMaker 2's heartbeat topic: emitted in every cluster it writes to, mirrored onward;
a peer's copy that stops growing means that cluster (or the link to it) is down."""

_NAME = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


def is_topic_name(name: str) -> bool:
    """Whether Kafka would accept ``name`` as a topic name."""
    return bool(_TOPIC.match(name)) and name not in (".", "..")


class TopicNames(msgspec.Struct, frozen=True):
    """The pipeline's topics under one prefix."""

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not _NAME.match(self.prefix):
            raise ValueError(f"topic prefix {self.prefix!r} may hold only letters, digits, '.', '_', '-'")

    @property
    def requests(self) -> str:
        """Ingress: every client request, key = tenant."""
        return f"{self.prefix}.requests"

    @property
    def requests_dlq(self) -> str:
        """Records admission could not accept, with the reason."""
        return f"{self.prefix}.requests.dlq"

    def dispatch(self, region: str) -> str:
        """Admitted requests for one region's worker group (explicit partitions)."""
        return f"{self.prefix}.dispatch.{region}"

    @property
    def replies(self) -> str:
        """Shared reply topic; each client instance owns one partition."""
        return f"{self.prefix}.replies"

    def tenant_replies(self, tenant: str) -> str:
        """A tenant's private reply topic (a secured pipeline: only that tenant may read it)."""
        return f"{self.replies}.{tenant}"

    @property
    def events(self) -> str:
        """Per-request outcomes and batch stats."""
        return f"{self.prefix}.events"

    def owns(self, topic: str) -> bool:
        """A pipeline topic no answer may be written to: requests, dispatch, events, DLQ, and
        on linked clusters what MirrorMaker 2 reads or writes (a return topic, a mirrored copy
        of any of these, its heartbeats): an answer there would be mirrored into another
        region as if the pipeline had sent it."""
        own = (self.requests, self.requests_dlq, self.events, HEARTBEATS, "checkpoints.internal")
        if topic in own or any(topic.endswith(f".{name}") for name in own) or topic.startswith("mm2-"):
            return True
        return f".{self.prefix}.dispatch." in f".{topic}" or f".{self.prefix}.to-" in f".{topic}"

    # -- regions as linked clusters (MirrorMaker 2) ---------------------------------------

    def to_region(self, region: str, topic: str) -> str:
        """Where a worker writes what it owes a client of ``region`` (an answer on ``topic``,
        an outcome event): a topic of its own cluster that MirrorMaker 2 mirrors to ``region``
        alone. A worker's transaction then stays inside one cluster."""
        # Not ``to.<region>``: MirrorMaker 2 reads a dot-separated segment equal to the target
        # as "came from there" and would not mirror the topic (cycle detection).
        return f"{self.prefix}.to-{region}.{topic}"

    def dispatch_sources(self, region: str, peers: Iterable[str]) -> list[str]:
        """What ``region``'s workers read: its own dispatch topic, and each peer's copy of the
        dispatch topic it keeps for ``region`` (requests its admission routed here)."""
        return [self.dispatch(region), *(mirrored(peer, self.dispatch(region)) for peer in peers)]

    def returns(self, region: str, topic: str, peers: Iterable[str]) -> list[str]:
        """``topic`` and the copies of what each peer answered on it for clients of ``region``."""
        return [topic, *(mirrored(peer, self.to_region(region, topic)) for peer in peers)]

    def origin(self, source_topic: str, region: str) -> str:
        """The region whose admission routed a record read from ``source_topic`` by ``region``'s
        workers: ``region`` itself, or the peer whose copy it came through."""
        suffix = f".{self.dispatch(region)}"
        return source_topic.removesuffix(suffix) if source_topic.endswith(suffix) else region

    @property
    def admission_group(self) -> str:
        """Consumer group of the admission stage (its Faust application id)."""
        return f"{self.prefix}-admission"

    def worker_group(self, region: str) -> str:
        """Consumer group of one region's inference workers."""
        return f"{self.prefix}-workers-{region}"


def mirrored(source_region: str, topic: str) -> str:
    """The name MirrorMaker 2 gives ``topic`` of ``source_region``'s cluster in another
    cluster (``DefaultReplicationPolicy``: the source alias, a dot, the name)."""
    return f"{source_region}.{topic}"
