"""Cancelling a request: the cancel a client puts on the ingress topic and admission's answer.

Schema version 7 (see ``messages.SCHEMA_VERSION``); how a cancel travels is in ``streams/cancels.py``.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from kinfer.schemas import limits
from kinfer.schemas.errors import ErrorCode, InvalidMessage
from kinfer.schemas.messages import Reply, ReplyAddress, writer_version

CancelStatus = Literal["cancelling", "finished", "unknown", "already_cancelled", "refused"]
"""What a cancel did: ``cancelling`` (the request is being stopped: its own one answer follows,
``cancelled`` with what was made, or its result if it finished first), ``finished`` (it was
answered already), ``unknown`` (no such request of this tenant), ``already_cancelled``,
``refused`` (see ``code``). Each leaves the request's one answer as it was."""


class CancelRequest(msgspec.Struct, frozen=True, omit_defaults=True, kw_only=True):
    """Stop a request (put on ``<prefix>.requests``, key = tenant, header ``kinfer-kind:
    cancel``). Same topic and key as the request, so admission sees it after the request."""

    request_id: str
    """The request to cancel."""
    tenant: str
    """Its tenant: only the tenant that sent a request can cancel it (ids are per tenant)."""
    reply_to: ReplyAddress
    """Where the :class:`CancelAck` goes."""
    created_ms: int = 0
    """Unix ms when the cancel was made."""
    deadline_ms: int | None = None
    """Unix ms after which the cancel is void (a signature's validity, as for requests)."""
    schema_version: int = msgspec.field(default_factory=writer_version)

    def __post_init__(self) -> None:
        for name in ("request_id", "tenant"):
            if not 1 <= len(getattr(self, name)) <= limits.MAX_ID_CHARS:
                raise InvalidMessage(f"{name} must be 1..{limits.MAX_ID_CHARS} characters")


class CancelAck(msgspec.Struct, frozen=True, omit_defaults=True, kw_only=True, tag="cancel"):
    """Admission's one answer to a :class:`CancelRequest`, on its reply address."""

    request_id: str
    """The request the cancel named."""
    status: CancelStatus
    message: str = ""
    """For humans; never parsed."""
    code: ErrorCode | None = None
    """With ``refused``: why (``unauthenticated``, ``invalid_request``)."""
    schema_version: int = msgspec.field(default_factory=writer_version)


ReplyRecord = Reply | CancelAck
"""Everything a reply partition may hold."""
