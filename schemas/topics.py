"""Topic names of the pipeline. Every name derives from one prefix, so a test
run (or a second deployment on a shared cluster) can use its own set."""

from __future__ import annotations

import re

import msgspec

DEFAULT_PREFIX = "kinfer"
DEFAULT_REGIONS = ("us-west", "eu-central", "ap-southeast")

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
        """A pipeline topic no answer may be written to: requests, dispatch, events, DLQ."""
        own = (self.requests, self.requests_dlq, self.events)
        return topic in own or topic.startswith(f"{self.prefix}.dispatch.")

    @property
    def admission_group(self) -> str:
        """Consumer group of the admission stage (its Faust application id)."""
        return f"{self.prefix}-admission"

    def worker_group(self, region: str) -> str:
        """Consumer group of one region's inference workers."""
        return f"{self.prefix}-workers-{region}"
