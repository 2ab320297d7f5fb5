"""kinfer's wire contract: messages, error codes, headers, topic names, limits.

This package imports nothing else of kinfer; every stage meets the others here.
"""

from kinfer.schemas.cancels import CancelAck, CancelRequest, CancelStatus
from kinfer.schemas.codec import decode_dead_letter, decode_event, decode_reply, decode_request, encode
from kinfer.schemas.errors import ErrorCode, InvalidMessage, KinferError
from kinfer.schemas.events import DeadLetter, WorkerEvent
from kinfer.schemas.kafka_client import KafkaConnection, KafkaSecurity
from kinfer.schemas.messages import (
    SCHEMA_VERSION,
    ChatMessage,
    Choice,
    ErrorReply,
    InferenceRequest,
    InferenceResult,
    RateLimitStatus,
    Reply,
    ReplyAddress,
    SamplingParams,
    Timings,
    TokenChunk,
    TokenLogprob,
    TopLogprob,
    Usage,
)
from kinfer.schemas.topics import DEFAULT_PREFIX, DEFAULT_REGIONS, TopicNames

__all__ = [
    "DEFAULT_PREFIX",
    "DEFAULT_REGIONS",
    "SCHEMA_VERSION",
    "CancelAck",
    "CancelRequest",
    "CancelStatus",
    "ChatMessage",
    "Choice",
    "DeadLetter",
    "ErrorCode",
    "ErrorReply",
    "InferenceRequest",
    "InferenceResult",
    "InvalidMessage",
    "KafkaConnection",
    "KafkaSecurity",
    "KinferError",
    "RateLimitStatus",
    "Reply",
    "ReplyAddress",
    "SamplingParams",
    "Timings",
    "TokenChunk",
    "TokenLogprob",
    "TopLogprob",
    "TopicNames",
    "Usage",
    "WorkerEvent",
    "decode_dead_letter",
    "decode_event",
    "decode_reply",
    "decode_request",
    "encode",
]
