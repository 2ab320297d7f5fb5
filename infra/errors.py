"""Errors of running kinfer: the local stack, settings and the CLI.

Each says what the operator should do; the CLI prints ``code: message`` and
exits non-zero.
"""

from __future__ import annotations

from kinfer.schemas.errors import ErrorCode, KinferError


class StackError(KinferError):
    """The local stack could not be started, reached or stopped."""

    code = ErrorCode.UNAVAILABLE


class ToolMissing(StackError):
    """A program the stack needs (java, mvn, redis-server) is not installed: install it
    (``make setup`` does) or point KINFER_BOOTSTRAP_SERVERS / KINFER_REDIS_URL at
    existing services."""


class PortInUse(StackError):
    """Another process listens on a port the stack wants: stop it or choose another
    port with the setting named in the message."""


class StartTimeout(StackError):
    """A service did not answer in time; the message holds the tail of its log."""


class ServiceUnreachable(StackError):
    """A configured external service does not answer: check the URL and that it runs."""
