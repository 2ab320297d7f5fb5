from __future__ import annotations

from kinfer.schemas import encode, headers
from kinfer.schemas.codec import rate_limit_header
from kinfer.streams.admission import with_rate_limit
from tests.samples import rate_limit_status

STATUS = rate_limit_status(remaining_requests=7)


def test_admission_replaces_a_status_the_client_forged() -> None:
    forged = rate_limit_status(remaining_requests=10**9, remaining_tokens=10**9)

    sent = [(headers.REQUEST_ID, b"r1"), (headers.RATE_LIMIT, encode(forged))]
    stamped = with_rate_limit(sent, STATUS)
    assert [k for k, _ in stamped].count(headers.RATE_LIMIT) == 1
    assert (headers.REQUEST_ID, b"r1") in stamped
    assert rate_limit_header(headers.decode_headers(stamped)) == STATUS


def test_an_unreadable_status_is_ignored_not_fatal() -> None:
    assert rate_limit_header({headers.RATE_LIMIT: "{not json"}) is None
    assert rate_limit_header({headers.RATE_LIMIT: '{"limit_requests": "many"}'}) is None
    assert rate_limit_header({}) is None
