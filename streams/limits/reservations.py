"""Tokens reserved at admission (prompt + max_tokens) until the worker reports what the
request really used: admission writes the reservation, the outcome recorder settles it."""

from __future__ import annotations

import msgspec

from kinfer.schemas.request_keys import MARKER_TTL_S, request_key

TTL_S = MARKER_TTL_S
"""An unsettled reservation (no outcome ever came) lapses after this long."""


class Reservation(msgspec.Struct, frozen=True):
    tenant: str
    tier: str
    tokens: int


_decoder = msgspec.json.Decoder(Reservation)


def reservation_key(prefix: str, tenant: str, request_id: str) -> str:
    return f"{prefix}:resv:{request_key(tenant, request_id)}"


def encode_reservation(reservation: Reservation) -> bytes:
    return msgspec.json.encode(reservation)


def decode_reservation(raw: bytes) -> Reservation:
    return _decoder.decode(raw)
