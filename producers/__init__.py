"""Putting requests on Kafka and reading the answers: the client SDK."""

from producers.client import AsyncClient
from producers.config import ClientConfig
from producers.errors import (
    ClientClosed,
    DeadlineExceeded,
    InternalError,
    InvalidRequest,
    RateLimited,
    RequestFailed,
    Unavailable,
)

__all__ = [
    "AsyncClient",
    "ClientClosed",
    "ClientConfig",
    "DeadlineExceeded",
    "InternalError",
    "InvalidRequest",
    "RateLimited",
    "RequestFailed",
    "Unavailable",
]
