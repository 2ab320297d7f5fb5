"""One request's identity, and the Redis keys every stage marks it under.

Request ids are chosen by clients, so every key is scoped by tenant: one tenant's ids
can never make another tenant's requests look answered or decided.
"""

from __future__ import annotations

from typing import Final

MARKER_TTL_S: Final = 3600
"""How long a request id is remembered as decided or answered: far past any redelivery,
and the time within which a reused id is not served again."""


def request_key(tenant: str, request_id: str) -> str:
    return f"{len(tenant)}:{tenant}:{request_id}"


def answered_key(prefix: str, key: str) -> str:
    """Set by a worker once the request's answer committed, or by admission when it answered
    a forward it gave up on (``streams/effects.Withdraw``): workers skip a request marked so."""
    return f"{prefix}:answered:{key}"


def decided_key(prefix: str, key: str) -> str:
    """Set by admission once its decision for the request (forward, answer, queue) is carried out."""
    return f"{prefix}:decided:{key}"


def cancelled_key(prefix: str, key: str) -> str:
    """Set by admission when the request is cancelled: whoever holds it (a worker, the delay
    queue) stops it and answers it ``cancelled``."""
    return f"{prefix}:cancelled:{key}"


def cancels_channel(prefix: str) -> str:
    """The Redis pub/sub channel a cancel's request key is published on: a worker holding the
    request stops it at its next step, without asking Redis every step."""
    return f"{prefix}:cancels"
