"""KINFER_ settings: the one place that reads the environment.

Each stage takes its own typed config; this module composes them from
``KINFER_*`` variables (and the CLI's flags, which override them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from consumers.config import WorkerConfig
from infra.stack.kafka import loopback_ports
from producers.config import ClientConfig
from producers.gateway.config import GatewayConfig
from schemas import DEFAULT_PREFIX
from schemas.serving import DEFAULT_MODEL
from streams.config import AdmissionConfig


class KinferSettings(BaseSettings):
    """Every setting, with defaults that work on one machine."""

    model_config = SettingsConfigDict(env_prefix="KINFER_", extra="ignore")

    bootstrap_servers: str | None = None
    """An existing Kafka cluster; when set, `kinfer up` starts no broker."""
    redis_url: str | None = None
    """An existing Redis; when set, `kinfer up` starts no Redis."""
    state_dir: Path = Path(".kinfer")
    """Broker jars and data, Redis data, pid files and logs of the local stack."""
    models_dir: Path | None = None
    """Pulled models (Hugging Face folders); default ``<state_dir>/models``."""
    kafka_jars_dir: Path | None = None
    """Maven-resolved broker jars; default ``<state_dir>/kafka/libs``."""
    kafka_port: int = Field(default=19092, ge=1, le=65535)
    """Local broker's client port (node i of a local cluster: this + 2i)."""
    kafka_controller_port: int = Field(default=19093, ge=1, le=65535)
    """Local broker's KRaft controller port (node i: this + 2i)."""
    kafka_brokers: int = Field(default=1, ge=1, le=5)
    """Nodes of the local KRaft cluster `kinfer up` starts; 3 replicate topics and survive a broker."""
    redis_port: int = Field(default=16379, ge=1, le=65535)
    """Local Redis port."""
    startup_timeout_s: float = Field(default=90.0, gt=0)
    """How long `kinfer up` waits for each service to answer."""
    topic_prefix: str = DEFAULT_PREFIX
    """Prefix of every topic (tests use their own)."""
    region: str = "us-west"
    """Region of this admission worker's output / this inference worker's input."""
    request_partitions: int = Field(default=6, ge=1)
    """Partitions of the ingress topic (admission parallelism)."""
    dispatch_partitions: int = Field(default=6, ge=1)
    """Partitions of each region's dispatch topic (most workers per region)."""
    reply_partitions: int = Field(default=16, ge=1)
    """Partitions of the shared reply topic (client instances spread over them)."""
    replication: int | None = Field(default=None, ge=1)
    """Replication factor of created topics; default min(3, local nodes), 1 on an external cluster."""
    region_weights: dict[str, float] = Field(
        default_factory=lambda: {"us-west": 60.0, "eu-central": 25.0, "ap-southeast": 15.0}
    )
    """Regions (each gets a dispatch topic) and their share of users on the routing ring (JSON)."""
    tiers_file: Path | None = None
    """TOML table of tiers and tenants, reloaded when it changes (see README, Admission)."""
    breaker_min_calls: int = Field(default=500, ge=1)
    """Calls in the window before a breaker may open."""
    breaker_open_s: float = Field(default=30.0, gt=0)
    """How long an open breaker rejects before half-open probes."""
    breaker_probes: int = Field(default=10, ge=1)
    """Requests let through while half-open; all must succeed to close."""
    cache_ttl_s: int = Field(default=3600, ge=1)
    """How long a cached deterministic answer is served."""
    gateway_host: str = "127.0.0.1"
    """Where `kinfer gateway` listens."""
    gateway_port: int = Field(default=8000, ge=1, le=65535)
    """The gateway's HTTP port."""
    api_keys: dict[str, SecretStr] = Field(default_factory=dict)
    """Gateway API keys as a JSON object tenant -> key; the key decides the tenant (and tier)."""
    gateway_allow_anonymous: bool = False
    """Serve calls without a key as KINFER_TENANT (development only)."""
    gateway_timeout_s: float = Field(default=60.0, gt=0)
    """Longest a gateway call waits for its answer (then 504)."""
    tenant: str = "default"
    """Tenant the CLI client sends as."""
    model: str = DEFAULT_MODEL
    """Model a worker serves: a catalogue name (pulled on first use), kinfer-tiny, or a local HF folder."""
    device: str = "auto"
    """Worker device: auto (CUDA when present), cpu, cuda, cuda:N."""
    dtype: str = "float32"
    """Worker weights dtype: float32, bfloat16, float16 (CUDA)."""
    quantize: str = "none"
    """Worker weight quantization: none, or int8 (dynamic, CPU)."""
    max_batch_requests: int = Field(default=32, ge=1)
    """Most requests in one model batch."""
    max_batch_tokens: int = Field(default=4096, ge=16)
    """Token budget of a batch (prompt + max new tokens, summed)."""
    max_wait_ms: int = Field(default=50, ge=0)
    """Longest a worker waits to fill a batch once a request is there."""
    metrics_port: int = Field(default=0, ge=0, le=65535)
    """Prometheus port of the process being started; 0 = off."""
    telemetry_interval_s: float = Field(default=5.0, gt=0, le=300)
    """How often a worker samples its utilisation and tokens/s gauges."""
    log_format: Literal["console", "json"] = "console"
    """console or json."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """kinfer's own log level; DEBUG also shows Faust's and aiokafka's rebalance and fetch logs."""

    @model_validator(mode="after")
    def _check(self) -> KinferSettings:
        self.state_dir = self.state_dir.resolve()
        if self.kafka_port == self.kafka_controller_port:
            raise ValueError(
                f"KINFER_KAFKA_PORT and KINFER_KAFKA_CONTROLLER_PORT are both {self.kafka_port}; "
                "they must differ"
            )
        ports = [port for pair in self.kafka_node_ports for port in pair]
        if len(set(ports)) < len(ports) or max(ports) > 65535:
            raise ValueError(
                f"{self.kafka_brokers} local Kafka nodes use ports KINFER_KAFKA_PORT + 2i and "
                f"KINFER_KAFKA_CONTROLLER_PORT + 2i; {self.kafka_port} and {self.kafka_controller_port} "
                "make them collide (e.g. use 19092 and 19093)"
            )
        if self.region not in self.region_weights:
            raise ValueError(
                f"KINFER_REGION {self.region!r} is not one of KINFER_REGION_WEIGHTS "
                f"{list(self.region_weights)}"
            )
        return self

    @property
    def model_root(self) -> Path:
        return (self.models_dir or self.state_dir / "models").resolve()

    @property
    def external_kafka(self) -> bool:
        return self.bootstrap_servers is not None

    @property
    def external_redis(self) -> bool:
        return self.redis_url is not None

    @property
    def kafka_node_ports(self) -> list[tuple[int, int]]:
        """(client, controller) port of each node of the local cluster."""
        return loopback_ports(self.kafka_brokers, self.kafka_port, self.kafka_controller_port)

    @property
    def bootstrap(self) -> str:
        local = ",".join(f"127.0.0.1:{client}" for client, _ in self.kafka_node_ports)
        return self.bootstrap_servers or local

    @property
    def topic_replication(self) -> int:
        if self.replication is not None:
            return self.replication
        return 1 if self.external_kafka else min(3, self.kafka_brokers)

    @property
    def redis(self) -> str:
        return self.redis_url or f"redis://127.0.0.1:{self.redis_port}/0"

    def client_config(self, **overrides: object) -> ClientConfig:
        return ClientConfig.model_validate(
            {
                "redis_url": self.redis,
                "bootstrap_servers": self.bootstrap,
                "topic_prefix": self.topic_prefix,
                "tenant": self.tenant,
                **overrides,
            }
        )

    def gateway_config(self) -> GatewayConfig:
        return GatewayConfig(
            host=self.gateway_host,
            port=self.gateway_port,
            api_keys=self.api_keys,
            allow_anonymous=self.gateway_allow_anonymous,
            anonymous_tenant=self.tenant,
            regions=tuple(self.region_weights),
            timeout_s=self.gateway_timeout_s,
        )

    def admission_config(self, **overrides: object) -> AdmissionConfig:
        return AdmissionConfig.model_validate(
            {
                "bootstrap_servers": self.bootstrap,
                "topic_prefix": self.topic_prefix,
                "redis_url": self.redis,
                "region_weights": self.region_weights,
                "tiers_file": self.tiers_file,
                "breaker_min_calls": self.breaker_min_calls,
                "breaker_open_s": self.breaker_open_s,
                "breaker_probes": self.breaker_probes,
                "data_dir": self.state_dir / "admission",
                "metrics_port": self.metrics_port,
                **overrides,
            }
        )

    def worker_config(self, **overrides: object) -> WorkerConfig:
        return WorkerConfig.model_validate(
            {
                "bootstrap_servers": self.bootstrap,
                "topic_prefix": self.topic_prefix,
                "region": self.region,
                "model": self.model,
                "device": self.device,
                "dtype": self.dtype,
                "quantize": self.quantize,
                "max_batch_requests": self.max_batch_requests,
                "max_batch_tokens": self.max_batch_tokens,
                "max_wait_ms": self.max_wait_ms,
                "redis_url": self.redis,
                "cache_ttl_s": self.cache_ttl_s,
                "metrics_port": self.metrics_port,
                "telemetry_interval_s": self.telemetry_interval_s,
                **overrides,
            }
        )
