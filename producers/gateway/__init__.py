"""The OpenAI-compatible HTTP gateway: every call becomes a Kafka request through the SDK."""
