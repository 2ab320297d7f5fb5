"""Every Redis client's bounds: a timeout is never retried (a hung Redis would cost it twice);
a broken pooled connection is, once, at once."""

from __future__ import annotations

import redis.exceptions

from kinfer.schemas.redis_bounds import bounded, busy


def test_a_timeout_is_not_retried_and_a_broken_connection_is_once() -> None:
    for asyncio in (False, True):
        options = bounded(0.5, asyncio=asyncio)
        assert options["socket_timeout"] == options["socket_connect_timeout"] == 0.5
        retry = options["retry"]
        assert retry._retries == 1
        assert redis.exceptions.ConnectionError in retry._supported_errors
        assert redis.exceptions.TimeoutError not in retry._supported_errors


def test_busy_is_an_outage_and_other_refusals_are_not() -> None:
    assert busy(redis.exceptions.ResponseError("BUSY Redis is busy running a script."))
    assert not busy(redis.exceptions.ResponseError("WRONGTYPE Operation against a key"))
    assert not busy(redis.exceptions.ConnectionError("BUSY"))
