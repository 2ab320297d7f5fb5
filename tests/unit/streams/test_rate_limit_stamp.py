from __future__ import annotations

from kinfer.schemas import encode, headers
from kinfer.schemas.codec import rate_limit_header
from kinfer.streams.admission import stamped
from tests.samples import rate_limit_status

STATUS = rate_limit_status(remaining_requests=7)


def test_admission_replaces_stamps_the_client_forged() -> None:
    forged = rate_limit_status(remaining_requests=10**9, remaining_tokens=10**9)

    sent = [
        (headers.REQUEST_ID, b"r1"),
        (headers.RATE_LIMIT, encode(forged)),
        (headers.ADMITTED_MS, b"1.0"),
    ]
    out = stamped(sent, STATUS, 1234.5)
    assert [k for k, _ in out].count(headers.RATE_LIMIT) == 1
    assert [k for k, _ in out].count(headers.ADMITTED_MS) == 1
    assert (headers.REQUEST_ID, b"r1") in out
    assert rate_limit_header(headers.decode_headers(out)) == STATUS
    assert headers.decode_headers(out)[headers.ADMITTED_MS] == "1234.500"


def test_an_unreadable_status_is_ignored_not_fatal() -> None:
    assert rate_limit_header({headers.RATE_LIMIT: "{not json"}) is None
    assert rate_limit_header({headers.RATE_LIMIT: '{"limit_requests": "many"}'}) is None
    assert rate_limit_header({}) is None
