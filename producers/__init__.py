"""Putting requests on Kafka and reading the answers: the client SDK."""

from kinfer.producers.chat import ChatMessage
from kinfer.producers.client import AsyncClient
from kinfer.producers.config import ClientConfig
from kinfer.producers.errors import (
    Cancelled,
    ClientClosed,
    DeadlineExceeded,
    InternalError,
    InvalidRequest,
    RateLimited,
    RequestFailed,
    Unauthenticated,
    Unavailable,
)
from kinfer.producers.sync_client import Client

__all__ = [
    "AsyncClient",
    "Cancelled",
    "ChatMessage",
    "Client",
    "ClientClosed",
    "ClientConfig",
    "DeadlineExceeded",
    "InternalError",
    "InvalidRequest",
    "RateLimited",
    "RequestFailed",
    "Unauthenticated",
    "Unavailable",
]
