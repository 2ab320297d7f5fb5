"""Request signatures: a tenant is trusted only when its request is signed with its key.

A signed request carries ``kinfer-signature: v1=<hex>``, an HMAC-SHA256 under the tenant's
key over the request id, tenant, deadline and the SHA-256 of the record's value (which holds
the prompt, the sampling and the reply address), so a signature can be neither moved to
another request nor kept over a changed body. A tenant has up to two live keys (rotation:
the new one signs, both verify until the old one is retired).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import Final

SIGNATURE: Final = "kinfer-signature"
"""Header holding a request's signature."""
SCHEME: Final = "v1"


def _message(request_id: str, tenant: str, deadline_ms: int | None, value: bytes) -> bytes:
    digest = hashlib.sha256(value).hexdigest()
    deadline = "" if deadline_ms is None else str(deadline_ms)
    return f"kinfer-request-{SCHEME}\n{request_id}\n{tenant}\n{deadline}\n{digest}".encode()


def sign(key: str, request_id: str, tenant: str, deadline_ms: int | None, value: bytes) -> str:
    """The ``kinfer-signature`` header value of a request record."""
    mac = hmac.new(key.encode(), _message(request_id, tenant, deadline_ms, value), hashlib.sha256)
    return f"{SCHEME}={mac.hexdigest()}"


def verify(
    keys: Iterable[str],
    signature: str | None,
    request_id: str,
    tenant: str,
    deadline_ms: int | None,
    value: bytes,
) -> str | None:
    """None when ``signature`` is a valid signature under one of ``keys``; else why not."""
    if not signature:
        return "the request is not signed (kinfer-signature header missing)"
    scheme, _, _ = signature.partition("=")
    if scheme != SCHEME:
        return f"unknown signature scheme {scheme[:16]!r} (expected {SCHEME})"
    live = [key for key in keys if key]
    if not live:
        return f"tenant {tenant!r} has no signing key"
    for key in live:
        if hmac.compare_digest(sign(key, request_id, tenant, deadline_ms, value), signature):
            return None
    return "the signature does not match the request under the tenant's keys"
