"""The admission stage's knobs. Built by ``infra`` from KINFER_ settings and flags."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from schemas import DEFAULT_PREFIX, limits


class AdmissionConfig(BaseModel, frozen=True):
    bootstrap_servers: str = "127.0.0.1:19092"
    """Kafka bootstrap servers."""
    topic_prefix: str = DEFAULT_PREFIX
    """Prefix of every pipeline topic."""
    app_id: str = "kinfer-admission"
    """Faust application id: consumer group and internal topic prefix."""
    region: str = "us-west"
    """Region every admitted request goes to (consistent-hash routing: issue 3)."""
    data_dir: Path = Path(".kinfer/admission")
    """Faust's local state."""
    max_prompt_bytes: int = Field(default=limits.MAX_PROMPT_BYTES, ge=1, le=limits.MAX_PROMPT_BYTES)
    """Largest prompt admitted (UTF-8 bytes); at most the wire limit."""
    max_new_tokens: int = Field(default=4096, ge=1, le=limits.MAX_NEW_TOKENS)
    """Largest max_tokens admitted."""
    metrics_port: int = Field(default=0, ge=0, le=65535)
    """Prometheus /metrics port; 0 = off."""
    web_port: int = Field(default=0, ge=0, le=65535)
    """Faust's own web server; 0 = off."""
