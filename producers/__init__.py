"""Putting requests on Kafka and reading the answers: the client SDK."""

from producers.chat import ChatMessage
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
from producers.sync_client import Client

__all__ = [
    "AsyncClient",
    "ChatMessage",
    "Client",
    "ClientClosed",
    "ClientConfig",
    "DeadlineExceeded",
    "InternalError",
    "InvalidRequest",
    "RateLimited",
    "RequestFailed",
    "Unavailable",
]
