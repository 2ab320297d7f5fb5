"""Sample wire values shared by unit tests of different stages."""

from __future__ import annotations

from dataclasses import dataclass, field

from kinfer.schemas import RateLimitStatus


def rate_limit_status(**overrides: int) -> RateLimitStatus:
    """A free-tier status (100 requests and 20k tokens a minute), fields overridable."""
    fields = {
        "limit_requests": 100,
        "limit_tokens": 20_000,
        "remaining_requests": 99,
        "remaining_tokens": 19_000,
        "reset_requests_ms": 600,
        "reset_tokens_ms": 3_000,
    }
    return RateLimitStatus(**{**fields, **overrides})


@dataclass
class ConsumedRecord:
    """The parts of a consumed confluent-kafka ``Message`` a worker reads, for tests."""

    body: bytes
    at: int
    """Its offset on partition 0 of ``x.dispatch.us-west``."""
    header_values: dict[str, str] = field(default_factory=dict)
    produced_ms: int = 0
    """Its Kafka timestamp (0: none)."""
    source_topic: str = "x.dispatch.us-west"
    """Where it was read (a peer's MirrorMaker copy on linked clusters)."""

    def value(self) -> bytes:
        return self.body

    def headers(self) -> list[tuple[str, bytes]]:
        return [(k, v.encode()) for k, v in self.header_values.items()]

    def topic(self) -> str:
        return self.source_topic

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self.at

    def timestamp(self) -> tuple[int, int]:
        return (1 if self.produced_ms else 0, self.produced_ms)  # (CreateTime or none, ms)

    def error(self) -> None:
        return None
