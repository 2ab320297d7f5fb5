"""The admission stage's knobs. Built by ``infra`` from KINFER_ settings and flags."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from kinfer.schemas import DEFAULT_PREFIX, TopicNames, limits
from kinfer.schemas.kafka_client import KafkaConnection
from kinfer.streams.routing.regions import DEFAULT_WEIGHTS


class AdmissionConfig(BaseModel):
    """The admission stage: validation, limits, breakers, cache and routing."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True, extra="forbid")

    kafka: KafkaConnection = KafkaConnection()
    """The Kafka cluster and how to authenticate to it."""
    topic_prefix: str = DEFAULT_PREFIX
    """Prefix of every pipeline topic."""
    app_id: str | None = None
    """Faust application id (consumer group, internal topics); default ``<prefix>-admission``."""
    redis_url: str = "redis://127.0.0.1:16379/0"
    """Shared state: rate-limit buckets, breakers, delay queue, response cache."""
    region_weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    """Share of users each region takes on the consistent-hash ring."""
    region: str = "us-west"
    """The region whose cluster this admission reads (linked clusters: where it is home)."""
    peer_regions: tuple[str, ...] = ()
    """Linked clusters: the other regions, reached through MirrorMaker 2 (their answers' outcome
    events come back on ``<peer>.<prefix>.to-<region>.<prefix>.events``)."""
    peer_down_after_s: float = Field(default=10.0, ge=1.0, le=600.0)
    """A peer whose MirrorMaker heartbeats are older than this is down: its users' new requests
    go round it (``streams/routing/links.py``)."""
    tiers_file: Path | None = None
    """TOML tier and tenant table (reloaded when it changes); None = built-in tiers, all tenants free."""
    breaker_min_calls: int = Field(default=500, ge=1)
    """Calls in the window before a breaker may open (see streams/breakers/state.py)."""
    breaker_window_s: int = Field(default=60, ge=1)
    """Seconds of outcomes a breaker's error rate is computed over."""
    breaker_error_rate: float = Field(default=0.05, gt=0, lt=1)
    """Error rate over the window that opens a breaker."""
    breaker_open_s: float = Field(default=30.0, gt=0)
    """How long an open breaker rejects before half-open probes."""
    breaker_probes: int = Field(default=10, ge=1)
    """Requests let through while half-open; all must succeed to close."""
    data_dir: Path = Path(".kinfer/admission")
    """Faust's local state."""
    max_prompt_bytes: int = Field(default=limits.MAX_PROMPT_BYTES, ge=1, le=limits.MAX_PROMPT_BYTES)
    """Largest prompt admitted (UTF-8 bytes); at most the wire limit."""
    max_new_tokens: int = Field(default=4096, ge=1, le=limits.MAX_NEW_TOKENS)
    """Largest max_tokens admitted."""
    session_timeout_s: float = Field(default=10.0, ge=1.0, le=300.0)
    """A dead admission worker's partitions move on after this long."""
    rebalance_timeout_s: float = Field(default=20.0, ge=1.0, le=600.0)
    """Longest a rebalance waits for members to rejoin (Faust's default, 60 s and a
    1000 s poll interval, stalls the group behind crashed members)."""
    concurrency: int = Field(default=32, ge=1, le=256)
    """Records decided and forwarded at once (one tenant's still in arrival order). Each
    forward is still acked before its offset may be committed (Faust commits up to the lowest
    unacked offset). More actors also share more Redis round trips (64 tenants: 575
    decisions/s at 8, 904 at 32, 764 at 64; ``benchmarks/admission.py``)."""
    send_timeout_s: float = Field(default=30.0, ge=1.0, le=600.0)
    """Longest one record's forward or answer may wait on Kafka before its fallback answer is
    sent instead. Must outlast a broker fail-over: KRaft fences a dead broker after
    ``broker.session.timeout.ms`` (9 s by default), then clients refetch leaders."""
    require_signatures: bool = False
    """Refuse (``unauthenticated``) every request not signed with its tenant's key (kept in
    Redis by ``kinfer tenant``): a tenant is then proven, not claimed. On with `kinfer up --secure`."""
    signed_max_age_s: float = Field(default=1800.0, ge=1.0, le=3000.0)
    """With require_signatures: a signed request (or cancel) whose ``created_ms``, which its
    signature covers, is older than this is refused as a replay. Within it the request's
    idempotency marks (kept an hour) drop a copy replayed byte for byte."""
    clock_skew_s: float = Field(default=60.0, ge=0.0, le=300.0)
    """With require_signatures: how far a signed request's ``created_ms`` may be ahead of
    admission's clock (clients' clocks are not admission's)."""
    private_replies: bool = False
    """A request may name only its tenant's own reply topic ``<prefix>.replies.<tenant>`` (or
    the shared one, which only the gateway may read). On with `kinfer up --secure`."""
    web_port: int = Field(default=0, ge=0, le=65535)
    """Faust's own web server; 0 = off."""

    @property
    def faust_id(self) -> str:
        return self.app_id or TopicNames(self.topic_prefix).admission_group
