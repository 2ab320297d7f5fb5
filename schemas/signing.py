"""Signatures: a tenant is trusted only when its request is signed with its key, and a client
trusts an answer only when the pipeline signed it for that request.

A signed request carries ``kinfer-signature: v1=<hex>``, an HMAC-SHA256 under the tenant's
key over the request id, tenant, deadline and the SHA-256 of the record's value (which holds
the prompt, the sampling and the reply address), so a signature can be neither moved to
another request nor kept over a changed body. A tenant has up to two live keys (rotation:
the new one signs, both verify until the old one is retired).

Answers: admission derives a *reply key* from the key that verified the request and the
request id, and hands it to the worker on the dispatch record (``kinfer-reply-key``; only
workers may read dispatch topics). Every answer record (result, token chunk, error) carries
``kinfer-reply-signature``, an HMAC under that reply key over the record's value. The client,
holding the tenant key, derives the same reply key and drops what does not verify: a reply
forged into its partition is counted, never taken. A reply key is good for one request only,
so a worker never holds a tenant's key.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import Final

SIGNATURE: Final = "kinfer-signature"
"""Header holding a request's signature."""
SCHEME: Final = "v1"
REPLY_KEY: Final = "kinfer-reply-key"
"""Header of a dispatch record: the request's reply key (admission -> worker)."""
REPLY_SIGNATURE: Final = "kinfer-reply-signature"
"""Header of an answer record: its signature under the request's reply key."""


def _message(request_id: str, tenant: str, deadline_ms: int | None, value: bytes) -> bytes:
    digest = hashlib.sha256(value).hexdigest()
    deadline = "" if deadline_ms is None else str(deadline_ms)
    return f"kinfer-request-{SCHEME}\n{request_id}\n{tenant}\n{deadline}\n{digest}".encode()


def sign(key: str, request_id: str, tenant: str, deadline_ms: int | None, value: bytes) -> str:
    """The ``kinfer-signature`` header value of a request record."""
    mac = hmac.new(key.encode(), _message(request_id, tenant, deadline_ms, value), hashlib.sha256)
    return f"{SCHEME}={mac.hexdigest()}"


class SignatureRefused(ValueError):
    """A request signature that does not verify; the message says why."""


def verified_key(
    keys: Iterable[str],
    signature: str | None,
    request_id: str,
    tenant: str,
    deadline_ms: int | None,
    value: bytes,
) -> str:
    """The key of ``keys`` that ``signature`` verifies under; :class:`SignatureRefused` if none."""
    if not signature:
        raise SignatureRefused("the request is not signed (kinfer-signature header missing)")
    scheme, _, _ = signature.partition("=")
    if scheme != SCHEME:
        raise SignatureRefused(f"unknown signature scheme {scheme[:16]!r} (expected {SCHEME})")
    live = [key for key in keys if key]
    if not live:
        raise SignatureRefused(f"tenant {tenant!r} has no signing key")
    for key in live:
        if hmac.compare_digest(sign(key, request_id, tenant, deadline_ms, value), signature):
            return key
    raise SignatureRefused("the signature does not match the request under the tenant's keys")


def reply_key(tenant_key: str, request_id: str) -> str:
    """The key every answer to ``request_id`` is signed with (hex)."""
    message = f"kinfer-reply-{SCHEME}\n{request_id}".encode()
    return hmac.new(tenant_key.encode(), message, hashlib.sha256).hexdigest()


def sign_reply(key: str, value: bytes) -> str:
    """The ``kinfer-reply-signature`` of an answer record's value."""
    return f"{SCHEME}={hmac.new(key.encode(), value, hashlib.sha256).hexdigest()}"


def reply_signed(key: str, value: bytes, signature: str | None) -> bool:
    return signature is not None and hmac.compare_digest(sign_reply(key, value), signature)
