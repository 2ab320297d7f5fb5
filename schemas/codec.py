"""Encoding and decoding of wire messages (msgspec JSON).

Decoding is where untrusted bytes become typed messages, so every failure here
is an :class:`InvalidMessage` with a message that says what is wrong.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from kinfer.schemas import headers
from kinfer.schemas.cancels import CancelRequest, ReplyRecord
from kinfer.schemas.errors import InvalidMessage
from kinfer.schemas.events import DeadLetter, WorkerEvent
from kinfer.schemas.messages import (
    SCHEMA_VERSION,
    ChatMessage,
    InferenceRequest,
    RateLimitStatus,
    Reply,
    ReplyAddress,
    SamplingParams,
)

T = TypeVar("T")

_encoder = msgspec.json.Encoder()
_request_decoder = msgspec.json.Decoder(InferenceRequest)
_reply_decoder: msgspec.json.Decoder[Reply] = msgspec.json.Decoder(Reply)
_record_decoder: msgspec.json.Decoder[ReplyRecord] = msgspec.json.Decoder(ReplyRecord)
_cancel_decoder = msgspec.json.Decoder(CancelRequest)
_event_decoder = msgspec.json.Decoder(WorkerEvent)
_dead_letter_decoder = msgspec.json.Decoder(DeadLetter)
_rate_limit_decoder = msgspec.json.Decoder(RateLimitStatus)
_fields_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])
_raw_list_decoder = msgspec.json.Decoder(list[msgspec.Raw])

_REQUEST_FIELDS = frozenset(InferenceRequest.__struct_fields__)
_SAMPLING_FIELDS = frozenset(SamplingParams.__struct_fields__)
_ADDRESS_FIELDS = frozenset(ReplyAddress.__struct_fields__)
_MESSAGE_FIELDS = frozenset(ChatMessage.__struct_fields__)


def encode(message: msgspec.Struct) -> bytes:
    """JSON bytes of any wire message."""
    return _encoder.encode(message)


def cancel_headers(cancel: CancelRequest) -> headers.KafkaHeaders:
    """The headers of a cancel record: its kind, and where its acknowledgement goes."""
    return headers.encode_headers(
        {
            headers.KIND: headers.CANCEL,
            headers.REQUEST_ID: cancel.request_id,
            headers.TENANT: cancel.tenant,
            headers.DEADLINE_MS: cancel.deadline_ms,
            headers.REPLY_TOPIC: cancel.reply_to.topic,
            headers.REPLY_PARTITION: cancel.reply_to.partition,
            headers.SCHEMA_VERSION: cancel.schema_version,
        }
    )


def request_headers(request: InferenceRequest) -> headers.KafkaHeaders:
    """The headers a request record carries beside its value (see ``headers``)."""
    return headers.encode_headers(
        {
            headers.REQUEST_ID: request.request_id,
            headers.TENANT: request.tenant,
            headers.DEADLINE_MS: request.deadline_ms,
            headers.REPLY_TOPIC: request.reply_to.topic,
            headers.REPLY_PARTITION: request.reply_to.partition,
            headers.SCHEMA_VERSION: request.schema_version,
            headers.TRACEPARENT: request.traceparent,
        }
    )


_UNREADABLE = (msgspec.DecodeError, msgspec.ValidationError, RecursionError, UnicodeDecodeError)
"""What decoding hostile bytes can raise: malformed JSON, values breaking the contract,
nesting deeper than the decoder's stack, strings that are not UTF-8."""


def _decode(decoder: msgspec.json.Decoder[T], data: bytes, what: str) -> T:
    try:
        return decoder.decode(data)
    except _UNREADABLE as exc:
        raise InvalidMessage(f"malformed {what}: {type(exc).__name__}: {str(exc)[:200]}") from exc


def decode_request(data: bytes) -> InferenceRequest:
    """A request from JSON bytes, refusing unknown fields of this schema version.

    Unknown fields are accepted only from a newer writer (schema_version above
    ours): that is the forward-compatibility rule. From a same-version writer
    they are almost always typos (``max_token``) that would be silently ignored.
    """
    request = _decode(_request_decoder, data, "request")
    if request.schema_version <= SCHEMA_VERSION:
        try:
            _refuse_unknown_fields(data)
        except _UNREADABLE as exc:  # the request decoded, so this is the same bytes failing again
            raise InvalidMessage(f"malformed request: {exc}") from exc
    return request


def _refuse_unknown_fields(data: bytes) -> None:
    top: dict[str, Any] = _fields_decoder.decode(data)
    unknown = sorted(top.keys() - _REQUEST_FIELDS)
    for name, known in (("sampling", _SAMPLING_FIELDS), ("reply_to", _ADDRESS_FIELDS)):
        if name in top:
            inner = _fields_decoder.decode(top[name])
            unknown += [f"{name}.{key}" for key in sorted(inner.keys() - known)]
    for i, raw in enumerate(_raw_list_decoder.decode(top["messages"]) if "messages" in top else []):
        inner = _fields_decoder.decode(raw)
        unknown += [f"messages[{i}].{key}" for key in sorted(inner.keys() - _MESSAGE_FIELDS)]
    if unknown:
        raise InvalidMessage(f"unknown field(s) {', '.join(unknown)} for schema version {SCHEMA_VERSION}")


class _Salvage(msgspec.Struct):
    """The two fields an error reply needs, read leniently from a refused record."""

    request_id: str | None = None
    reply_to: ReplyAddress | None = None


_salvage_decoder = msgspec.json.Decoder(_Salvage)


def salvage_reply_target(data: bytes) -> tuple[str | None, ReplyAddress | None]:
    """Request id and reply address of a record refused as invalid, where readable.

    Lets a stage answer a request whose body is valid JSON but breaks the
    contract (a typo'd field, a value over a limit) instead of only dead-lettering it.
    """
    try:
        found = _salvage_decoder.decode(data)
    except _UNREADABLE:
        return None, None
    return found.request_id, found.reply_to


def reply_target(value: bytes, record_headers: dict[str, str]) -> tuple[str, ReplyAddress | None]:
    """Request id and reply address of a refused record: headers first, else what the
    body still says. Lets every stage answer even a record it cannot decode."""
    body_id, body_address = salvage_reply_target(value)
    found = headers.reply_address(record_headers)
    address = ReplyAddress(*found) if found else body_address
    return record_headers.get(headers.REQUEST_ID) or body_id or "", address


def decode_reply(data: bytes) -> Reply:
    """A result, token chunk or error reply from JSON bytes."""
    return _decode(_reply_decoder, data, "reply")


def decode_reply_record(data: bytes) -> ReplyRecord:
    """Anything a reply partition holds: a request's reply, or a cancel's acknowledgement."""
    return _decode(_record_decoder, data, "reply")


def decode_cancel(data: bytes) -> CancelRequest:
    """A cancel record's value (unknown fields are ignored: it only ever stops something)."""
    return _decode(_cancel_decoder, data, "cancel")


def decode_event(data: bytes) -> WorkerEvent:
    return _decode(_event_decoder, data, "worker event")


def decode_dead_letter(data: bytes) -> DeadLetter:
    return _decode(_dead_letter_decoder, data, "dead letter")


def rate_limit_header(values: dict[str, str]) -> RateLimitStatus | None:
    """The status admission stamped on a record, or None when absent or unreadable.

    It only decorates an answer, so a bad one is ignored rather than failing the request.
    """
    raw = values.get(headers.RATE_LIMIT)
    if raw is None:
        return None
    try:
        return _rate_limit_decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
