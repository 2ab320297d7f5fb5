"""The client SDK's knobs; usable with no environment at all."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from kinfer.schemas import DEFAULT_PREFIX, TopicNames
from kinfer.schemas.kafka_client import KafkaConnection


class ClientConfig(BaseModel):
    """A client of the pipeline (the SDK, `kinfer submit` and `chat`, the gateway's client)."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True, extra="forbid")

    kafka: KafkaConnection = KafkaConnection()
    """The Kafka cluster and how to authenticate to it."""
    topic_prefix: str = DEFAULT_PREFIX
    """Prefix of every pipeline topic."""
    region: str = "us-west"
    """The region whose cluster this client talks to."""
    peer_regions: tuple[str, ...] = ()
    """Linked clusters: answers computed in these regions come back on MirrorMaker 2's copies
    of their return topics (``<peer>.<prefix>.to-<region>.<reply topic>``), read beside the
    reply topic, at the same partition."""
    model: str | None = None
    """Model requests name unless a call says otherwise; None = whatever the region serves."""
    tenant: str = "default"
    """Tenant sent with every request (rate limits and tiers are per tenant)."""
    reply_partition: int | None = Field(default=None, ge=0)
    """Partition of the reply topic this client reads; None = pick one at random."""
    private_replies: bool = False
    """Read answers from the tenant's own reply topic ``<prefix>.replies.<tenant>`` instead of
    the shared one: on a secured pipeline a tenant may read only that topic."""
    signing_keys: dict[str, SecretStr] = Field(default_factory=dict)
    """Tenant -> request-signing key (JSON). Requests of a tenant listed here carry its
    signature (``kinfer-signature``); a secured pipeline refuses unsigned ones."""
    verify_replies: bool = False
    """Take an answer only when the pipeline signed it for its request (with a key derived from
    the tenant's signing key); anything else on the reply partition is counted and dropped. Needs
    the tenant in ``signing_keys`` and a pipeline that requires signatures."""
    timeout_s: float = Field(default=60.0, gt=0)
    """Default per-call timeout; also sets the request deadline."""
    max_in_flight: int = Field(default=10_000, ge=1)
    """Calls awaiting an answer at once; more wait (backpressure)."""
    linger_ms: int = Field(default=2, ge=0)
    """Producer batching delay."""
    check_consumers: bool = False
    """On start, fail at once (NothingServing) when no admission or no inference worker is
    running, instead of waiting for the deadline."""
    redis_url: str | None = None
    """Where chat sessions keep their history; None = chat() without session_id only."""
    session_ttl_s: int = Field(default=3600, ge=1)
    """A session's history expires this long after its last turn."""
    session_max_messages: int = Field(default=64, ge=2)
    """Most messages kept per session (oldest dropped first)."""

    @property
    def reply_topic(self) -> str:
        names = TopicNames(self.topic_prefix)
        return names.tenant_replies(self.tenant) if self.private_replies else names.replies

    @property
    def reply_topics(self) -> list[str]:
        """The reply topic and, on linked clusters, each peer's copy of its return topic."""
        return TopicNames(self.topic_prefix).returns(self.region, self.reply_topic, self.peer_regions)

    session_max_bytes: int = Field(default=64 * 1024, ge=1)
    """Most history prepended to a chat call (oldest dropped first)."""
