"""KINFER_ settings: the one place that reads the environment.

Each stage declares its own knobs in its typed config (``WorkerConfig``, ``AdmissionConfig``,
``GatewayConfig``, ``ClientConfig``, ``PoolConfig``); that declaration is the only one. This
module nests them as sections (``KINFER_WORKER__MAX_WAIT_MS``) beside the settings of the
local stack and the connection every stage shares (``KINFER_BOOTSTRAP_SERVERS``), and fills
each section's connection fields from the shared ones. The CLI derives its flags from the
same fields (``infra/cli_options.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, PrivateAttr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kinfer.consumers.config import WorkerConfig
from kinfer.consumers.pool.policy import PoolConfig
from kinfer.infra.stack.kafka import loopback_ports
from kinfer.infra.stack.redis import local_url
from kinfer.infra.stack.secure import Role, SecureFiles, kafka_user
from kinfer.producers.config import ClientConfig
from kinfer.producers.gateway.config import GatewayConfig
from kinfer.schemas import DEFAULT_PREFIX
from kinfer.schemas.kafka_client import KafkaConnection, KafkaSecurity
from kinfer.streams.config import AdmissionConfig
from kinfer.streams.routing.regions import DEFAULT_WEIGHTS

SECTION_ROLES: dict[str, Role] = {
    "client": "admin",  # a tenant's own user instead: ``composed``
    "admission": "admission",
    "worker": "worker",
    "pool": "tuner",
}
"""Whose credentials each section's stage uses on a secured local stack."""

ENV_PREFIX = "KINFER_"
KAFKA_PORT_STRIDE = 20
"""Port distance between two linked regions' local clusters (room for 5 nodes each)."""
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
    "client": frozenset({"kafka", "topic_prefix", "redis_url", "region", "peer_regions"}),
    "admission": frozenset(
        {"kafka", "topic_prefix", "redis_url", "region_weights", "data_dir", "region", "peer_regions"}
    ),
    "worker": frozenset({"kafka", "topic_prefix", "redis_url", "region", "peer_regions"}),
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
    kafka_security: KafkaSecurity = Field(default_factory=KafkaSecurity)
    """How every process authenticates to Kafka (SASL_SSL for a hosted cluster)."""
    secure: bool = False
    """Run the local stack secured (`kinfer up --secure`): SASL_SSL, ACLs, signed tenants,
    private replies, Redis ACL users. Once <state_dir>/secure exists, every command uses it."""
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
    """Region of this process: its worker's input, and on linked clusters (KINFER_CLUSTERS)
    whose cluster and Redis every stage and client here uses."""
    clusters: list[str] = Field(default_factory=list)
    """Regions that each run their own Kafka cluster and Redis, linked by MirrorMaker 2 (JSON
    list; `kinfer up --regions` keeps it in <state_dir>/regions.json); the first is the hub.
    Region i's local services use the ports above + 20i (Kafka) and + i (Redis), and
    <state_dir>/regions/<region>. Empty = one cluster, a dispatch topic per region."""
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

    _state_root: Path = PrivateAttr(default=Path(".kinfer"))

    @model_validator(mode="after")
    def _check(self) -> KinferSettings:
        self.state_dir = self.state_dir.resolve()
        self._localize()
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

    def _localize(self) -> None:
        """On linked clusters, this region's own services: ports shifted by its place in the
        list, its own state folder (the jars and models stay shared)."""
        self._state_root = self.state_dir
        if not self.clusters and (found := regions_file(self.state_dir)).exists():
            self.clusters = json.loads(found.read_text())
        if not self.clusters:
            return
        if self.region not in self.clusters:
            raise ValueError(
                f"KINFER_REGION {self.region!r} is not one of the linked regions {self.clusters}"
            )
        unknown = set(self.clusters) - set(self.region_weights)
        if unknown:
            raise ValueError(f"linked regions {sorted(unknown)} have no weight in KINFER_REGION_WEIGHTS")
        index = self.clusters.index(self.region)
        self.kafka_port += KAFKA_PORT_STRIDE * index
        self.kafka_controller_port += KAFKA_PORT_STRIDE * index
        self.redis_port += index
        self.models_dir = self.model_root
        self.kafka_jars_dir = self.kafka_jars_dir or self._state_root / "kafka" / "libs"
        self.state_dir = self._state_root / "regions" / self.region

    @property
    def state_root(self) -> Path:
        """KINFER_STATE_DIR itself (``state_dir`` is a region's folder in it on linked clusters)."""
        return self._state_root

    @property
    def linked(self) -> bool:
        """Regions are clusters of their own (KINFER_CLUSTERS)."""
        return bool(self.clusters)

    @property
    def peers(self) -> tuple[str, ...]:
        """The other linked regions (none on one cluster)."""
        return tuple(r for r in self.clusters if r != self.region)

    @property
    def routed_weights(self) -> dict[str, float]:
        """The ring's regions: on linked clusters only the linked ones."""
        if not self.clusters:
            return self.region_weights
        return {r: w for r, w in self.region_weights.items() if r in self.clusters}

    @property
    def served_here(self) -> tuple[str, ...]:
        """Regions whose workers use this cluster and Redis: all on one cluster, else this one."""
        return (self.region,) if self.clusters else tuple(self.region_weights)

    @property
    def hub(self) -> str:
        """Home of what is global: the first linked region (the only one on one cluster)."""
        return self.clusters[0] if self.clusters else self.region

    def in_region(self, region: str, clusters: list[str] | None = None) -> KinferSettings:
        """The same settings as a process of ``region`` has them (linked clusters; ``clusters``
        links another list of regions)."""
        values = self.model_dump(exclude_unset=True)
        values |= {
            "region": region,
            "state_dir": self.state_root,
            "clusters": self.clusters if clusters is None else clusters,
            "kafka_port": self.kafka_port - KAFKA_PORT_STRIDE * self._index,
            "kafka_controller_port": self.kafka_controller_port - KAFKA_PORT_STRIDE * self._index,
            "redis_port": self.redis_port - self._index,
        }
        return KinferSettings(**values)

    @property
    def _index(self) -> int:
        return self.clusters.index(self.region) if self.clusters else 0

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
    def secured(self) -> SecureFiles | None:
        """The secured local stack's material, when the local stack is (or is to be) secured."""
        if self.external_kafka:
            return None
        files = SecureFiles(self.state_dir / "secure")
        return files if self.secure or files.exists() else None

    @property
    def kafka(self) -> KafkaConnection:
        """How infra itself connects (topics, status, checks): the configured security, or the
        admin of a secured local stack."""
        security = self.secured.admin_security() if self.secured else self.kafka_security
        return KafkaConnection(bootstrap_servers=self.bootstrap, security=security)

    def role_kafka(self, role: Role) -> KafkaConnection:
        """A stage's connection: on a secured local stack, as its role's own user."""
        if self.secured is None:
            return self.kafka
        return KafkaConnection(bootstrap_servers=self.bootstrap, security=self.secured.role_security(role))

    def tenant_kafka(self, tenant: str) -> KafkaConnection:
        """A tenant's clients' connection on a secured local stack (`kinfer tenant add`)."""
        assert self.secured is not None
        return KafkaConnection(
            bootstrap_servers=self.bootstrap, security=self.secured.tenant_security(tenant)
        )

    def role_redis(self, role: Role) -> str:
        """A stage's Redis URL: on a secured local stack, as its role's ACL user."""
        if self.secured is None or self.external_redis:
            return self.redis
        password = self.secured.credentials().roles[role].get_secret_value()
        return local_url(self.redis_port, kafka_user(role), password, self.secured.ca_file)

    @property
    def topic_replication(self) -> int:
        if self.replication is not None:
            return self.replication
        return 1 if self.external_kafka else min(3, self.kafka_brokers)

    @property
    def redis(self) -> str:
        """Where infra itself reaches Redis (the admin user of a secured local stack)."""
        if self.redis_url:
            return self.redis_url
        return self.role_redis("admin") if self.secured else local_url(self.redis_port)

    def composed(self, section: str) -> dict[str, object]:
        """The shared values of a section's connection fields (``COMPOSED``)."""
        role = SECTION_ROLES.get(section, "admin")
        tenant = self.client.tenant if section == "client" and self.secured else None
        shared: dict[str, object] = {
            # a tenant's client connects as the tenant's own user and has no Redis
            "kafka": self.tenant_kafka(tenant) if tenant else self.role_kafka(role),
            "topic_prefix": self.topic_prefix,
            "redis_url": None if tenant else self.role_redis(role),
            "region": self.region,
            "peer_regions": self.peers,
            "region_weights": self.routed_weights,
            "regions": self.served_here,
            "data_dir": self.state_dir / "admission",
        }
        return {name: shared[name] for name in COMPOSED[section]}

    def _section(self, section: str, overrides: Mapping[str, object]) -> Any:
        config: BaseModel = getattr(self, section)
        # Fields set in the section keep their values; unset ones keep their defaults, so a
        # default derived from another field (the worker's group id) is derived again.
        secured = self._secured_defaults(section, config) if self.secured else {}
        values = {**secured, **config.model_dump(exclude_unset=True), **self.composed(section), **overrides}
        return SECTIONS[section].model_validate(values)

    def _secured_defaults(self, section: str, config: BaseModel) -> dict[str, object]:
        """What a secured local stack turns on in a section (the section may still say otherwise)."""
        if section == "admission":
            return {"require_signatures": True, "private_replies": True}
        if section == "client" and isinstance(config, ClientConfig) and self.secured is not None:
            secret = self.secured.credentials().tenants.get(config.tenant)
            keys = {config.tenant: secret.key} if secret else {}
            return {"private_replies": True, "signing_keys": keys, "verify_replies": bool(keys)}
        return {}

    def client_config(self, **overrides: object) -> ClientConfig:
        return self._section("client", overrides)  # type: ignore[no-any-return]

    def gateway_client_config(self, **overrides: object) -> ClientConfig:
        """The gateway's client: on a secured local stack, the gateway's user, signing for every
        tenant with its key, reading the shared reply topic (which only the gateway may read)."""
        if self.secured is None:
            return self.client_config(**overrides)
        keys = {name: t.key for name, t in self.secured.credentials().tenants.items()}
        values = {**self.client.model_dump(exclude_unset=True), **self.composed("client")}
        values |= {"kafka": self.role_kafka("gateway"), "redis_url": self.role_redis("gateway")}
        values |= {"signing_keys": keys, "private_replies": False, "verify_replies": True, **overrides}
        return ClientConfig.model_validate(values)

    def admission_config(self, **overrides: object) -> AdmissionConfig:
        return self._section("admission", overrides)  # type: ignore[no-any-return]

    def worker_config(self, **overrides: object) -> WorkerConfig:
        return self._section("worker", overrides)  # type: ignore[no-any-return]

    def gateway_config(self, **overrides: object) -> GatewayConfig:
        return self._section("gateway", overrides)  # type: ignore[no-any-return]

    def pool_config(self, **overrides: object) -> PoolConfig:
        return self._section("pool", overrides)  # type: ignore[no-any-return]


def regions_file(state_dir: Path) -> Path:
    """Where `kinfer up --regions` keeps the linked regions, for every later command."""
    return state_dir / "regions.json"
