"""KINFER_ settings: the one place that reads the environment.

Each stage declares its own knobs in its typed config (``WorkerConfig``, ``AdmissionConfig``,
``GatewayConfig``, ``ClientConfig``, ``PoolConfig``); that declaration is the only one. This
module nests them as sections (``KINFER_WORKER__MAX_WAIT_MS``) beside the settings of the
local stack and the connection every stage shares (``KINFER_BOOTSTRAP_SERVERS``), and fills
each section's connection fields from the shared ones. The CLI derives its flags from the
same fields (``infra/cli_options.py``).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kinfer.consumers.config import WorkerConfig
from kinfer.consumers.pool.policy import PoolConfig
from kinfer.infra.stack.kafka import loopback_ports
from kinfer.producers.config import ClientConfig
from kinfer.producers.gateway.config import GatewayConfig
from kinfer.schemas import DEFAULT_PREFIX
from kinfer.streams.config import AdmissionConfig
from kinfer.streams.routing.regions import DEFAULT_WEIGHTS

ENV_PREFIX = "KINFER_"
NESTED = "__"

SECTIONS: dict[str, type[BaseModel]] = {
    "client": ClientConfig,
    "admission": AdmissionConfig,
    "worker": WorkerConfig,
    "gateway": GatewayConfig,
    "pool": PoolConfig,
}
"""Each stage's config, under the name of its section (``KINFER_<SECTION>__<FIELD>``)."""

COMPOSED: dict[str, frozenset[str]] = {
    "client": frozenset({"bootstrap_servers", "topic_prefix", "redis_url"}),
    "admission": frozenset({"bootstrap_servers", "topic_prefix", "redis_url", "region_weights", "data_dir"}),
    "worker": frozenset({"bootstrap_servers", "topic_prefix", "redis_url", "region"}),
    "gateway": frozenset({"regions"}),
    "pool": frozenset(),
}
"""Section fields filled from the shared settings, never set on their own."""


class KinferSettings(BaseSettings):
    """The local stack, the shared connection, and one section per stage; defaults work on one machine."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter=NESTED, extra="ignore", use_attribute_docstrings=True
    )

    bootstrap_servers: str | None = None
    """An existing Kafka cluster; when set, `kinfer up` starts no broker."""
    redis_url: str | None = None
    """An existing Redis; when set, `kinfer up` starts no Redis."""
    state_dir: Path = Path(".kinfer")
    """Broker jars and data, Redis data, pid files and logs of the local stack."""
    models_dir: Path | None = None
    """Pulled models (Hugging Face folders); default <state_dir>/models."""
    kafka_jars_dir: Path | None = None
    """Maven-resolved broker jars; default <state_dir>/kafka/libs."""
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
    """Region of this inference worker's input (and of `kinfer pool`)."""
    region_weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    """Regions (each gets a dispatch topic) and their share of users on the routing ring (JSON)."""
    request_partitions: int = Field(default=6, ge=1)
    """Partitions of the ingress topic (admission parallelism)."""
    dispatch_partitions: int = Field(default=6, ge=1)
    """Partitions of each region's dispatch topic (most workers per region)."""
    reply_partitions: int = Field(default=16, ge=1)
    """Partitions of the shared reply topic (client instances spread over them)."""
    replication: int | None = Field(default=None, ge=1)
    """Replication factor of created topics; default min(3, local nodes), 1 on an external cluster."""
    metrics_port: int = Field(default=0, ge=0, le=65535)
    """Prometheus /metrics port of the process being started; 0 = off."""
    log_format: Literal["console", "json"] = "console"
    """console or json."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """kinfer's own log level; DEBUG also shows Faust's and aiokafka's rebalance and fetch logs."""

    client: ClientConfig = Field(default_factory=ClientConfig)
    """`kinfer submit` / `chat`, and the client inside the gateway."""
    admission: AdmissionConfig = Field(default_factory=AdmissionConfig)
    """`kinfer admission`."""
    worker: WorkerConfig = Field(default_factory=WorkerConfig)
    """`kinfer worker`."""
    gateway: GatewayConfig = Field(default_factory=GatewayConfig)
    """`kinfer gateway`."""
    pool: PoolConfig = Field(default_factory=PoolConfig)
    """`kinfer pool`."""

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

    def composed(self, section: str) -> dict[str, object]:
        """The shared values of a section's connection fields (``COMPOSED``)."""
        shared: dict[str, object] = {
            "bootstrap_servers": self.bootstrap,
            "topic_prefix": self.topic_prefix,
            "redis_url": self.redis,
            "region": self.region,
            "region_weights": self.region_weights,
            "regions": tuple(self.region_weights),
            "data_dir": self.state_dir / "admission",
        }
        return {name: shared[name] for name in COMPOSED[section]}

    def _section(self, section: str, overrides: Mapping[str, object]) -> Any:
        config: BaseModel = getattr(self, section)
        # Fields set in the section keep their values; unset ones keep their defaults, so a
        # default derived from another field (the worker's group id) is derived again.
        values = {**config.model_dump(exclude_unset=True), **self.composed(section), **overrides}
        return SECTIONS[section].model_validate(values)

    def client_config(self, **overrides: object) -> ClientConfig:
        return self._section("client", overrides)  # type: ignore[no-any-return]

    def admission_config(self, **overrides: object) -> AdmissionConfig:
        return self._section("admission", overrides)  # type: ignore[no-any-return]

    def worker_config(self, **overrides: object) -> WorkerConfig:
        return self._section("worker", overrides)  # type: ignore[no-any-return]

    def gateway_config(self, **overrides: object) -> GatewayConfig:
        return self._section("gateway", overrides)  # type: ignore[no-any-return]

    def pool_config(self, **overrides: object) -> PoolConfig:
        return self._section("pool", overrides)  # type: ignore[no-any-return]


def env_names() -> set[str]:
    """Every KINFER_ variable that is a setting."""
    names = {f"{ENV_PREFIX}{name.upper()}" for name in KinferSettings.model_fields if name not in SECTIONS}
    for section, config in SECTIONS.items():
        names.add(f"{ENV_PREFIX}{section.upper()}")  # a whole section as JSON
        names |= {
            f"{ENV_PREFIX}{section.upper()}{NESTED}{name.upper()}"
            for name in config.model_fields
            if name not in COMPOSED[section]
        }
    return names


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """KINFER_ variables that set nothing (a typo, or a name from before sections), each with
    the setting it most likely means."""
    known = env_names()
    unknown = []
    for name in sorted(k for k in environ if k.upper().startswith(ENV_PREFIX) and k.upper() not in known):
        guess = _closest(name.upper(), known)
        unknown.append(f"{name} (did you mean {guess}?)" if guess else name)
    return unknown


def _closest(name: str, known: set[str]) -> str | None:
    field = name.removeprefix(ENV_PREFIX)
    same_field = sorted(k for k in known if k.endswith(f"{NESTED}{field}"))
    if same_field:
        return " or ".join(same_field)
    match = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
    return match[0] if match else None
