"""kinfer: LLM inference served as an event-driven pipeline on Apache Kafka.

The public API is what this module exports: the client SDK and the wire contract. Everything
under ``kinfer.schemas``, ``kinfer.producers``, ``kinfer.streams``, ``kinfer.consumers`` and
``kinfer.infra`` that is not re-exported here is internal and may change without notice.
"""

from kinfer.producers import (
    AsyncClient,
    ChatMessage,
    Client,
    ClientClosed,
    ClientConfig,
    DeadlineExceeded,
    InternalError,
    InvalidRequest,
    RateLimited,
    RequestFailed,
    Unavailable,
)
from kinfer.schemas import (
    SCHEMA_VERSION,
    DeadLetter,
    ErrorCode,
    ErrorReply,
    InferenceRequest,
    InferenceResult,
    InvalidMessage,
    KinferError,
    ReplyAddress,
    SamplingParams,
    Timings,
    TokenChunk,
    TopicNames,
    Usage,
    WorkerEvent,
    decode_reply,
    decode_request,
    encode,
)

__all__ = [
    "SCHEMA_VERSION",
    "AsyncClient",
    "ChatMessage",
    "Client",
    "ClientClosed",
    "ClientConfig",
    "DeadLetter",
    "DeadlineExceeded",
    "ErrorCode",
    "ErrorReply",
    "InferenceRequest",
    "InferenceResult",
    "InternalError",
    "InvalidMessage",
    "InvalidRequest",
    "KinferError",
    "RateLimited",
    "ReplyAddress",
    "RequestFailed",
    "SamplingParams",
    "Timings",
    "TokenChunk",
    "TopicNames",
    "Unavailable",
    "Usage",
    "WorkerEvent",
    "decode_reply",
    "decode_request",
    "encode",
]
