"""A local Apache Kafka 4.x broker in KRaft mode (combined broker + controller).

The broker is ``kafka.Kafka`` from the Maven Central artifact
``org.apache.kafka:kafka_2.13``, resolved with its dependencies by Maven from
``infra/kafka/pom.xml`` into the state dir, and run with the machine's Java.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import structlog

from kinfer.infra.errors import StackError, StartTimeout, ToolMissing
from kinfer.infra.stack.process import ManagedProcess, log_tail, require_free_ports
from kinfer.infra.stack.secure import BrokerSecurity
from kinfer.schemas.kafka_client import KafkaConnection, KafkaSecurity, client_config
from kinfer.schemas.limits import MAX_MESSAGE_BYTES

log = structlog.get_logger(__name__)

MIN_JAVA = 17
KAFKA_FILES = Path(__file__).resolve().parent.parent / "kafka"
"""pom.xml and log4j2.properties, shipped as package data."""


@dataclass(frozen=True)
class KafkaNodeConfig:
    """One KRaft node on loopback."""

    state_dir: Path
    """Holds libs/, data/, logs and the pid file."""
    port: int = 19092
    """Client listener (PLAINTEXT)."""
    controller_port: int = 19093
    """KRaft controller listener."""
    node_id: int = 1
    heap: str = "512m"
    """JVM heap; small by default: this is a development broker."""
    jars_dir: Path | None = None
    """Where the Maven-resolved jars live; default ``<state_dir>/libs`` (tests share one)."""
    secured: BrokerSecurity | None = None
    """SASL_SSL listener and ACLs (`kinfer up --secure`); None = plaintext, anyone may do anything."""

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def libs_dir(self) -> Path:
        return self.jars_dir or self.state_dir / "libs"

    @property
    def data_dir(self) -> Path:
        return self.state_dir / f"data-{self.node_id}"

    @property
    def log_file(self) -> Path:
        return self.state_dir / f"broker-{self.node_id}.log"


def find_java() -> str:
    """Path of a Java >= 17 (JAVA_HOME first, then PATH)."""
    home = os.environ.get("JAVA_HOME")
    candidate = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not candidate or not Path(candidate).exists():
        raise ToolMissing(
            f"java not found (JAVA_HOME or PATH); the local Kafka broker needs Java >= {MIN_JAVA}: "
            "run `make setup` or `apt-get install openjdk-17-jre-headless`"
        )
    out = subprocess.run([candidate, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)', out.stderr + out.stdout)
    if not match or int(match.group(1)) < MIN_JAVA:
        raise ToolMissing(f"{candidate} is not Java >= {MIN_JAVA}: {out.stderr.strip()[:200]}")
    return candidate


REQUIRED_JARS = ("kafka_2.13-*.jar", "kafka-tools-[0-9]*.jar", "connect-mirror-[0-9]*.jar")
"""One jar of each artifact the pom names: the broker, the console producer and consumer, MirrorMaker 2."""


def _resolved(libs_dir: Path) -> bool:
    return all(any(libs_dir.glob(pattern)) for pattern in REQUIRED_JARS)


def resolve_jars(libs_dir: Path) -> None:
    """Resolve the broker and tools jars with Maven into ``libs_dir`` unless already there."""
    libs_dir = libs_dir.resolve()  # Maven resolves relative paths against the pom's folder
    if _resolved(libs_dir):
        return
    mvn = shutil.which("mvn")
    if not mvn:
        raise ToolMissing(
            "mvn (Apache Maven) not found; it resolves the Kafka broker jars from Maven Central: "
            "run `make setup` or `apt-get install maven`"
        )
    pom = KAFKA_FILES / "pom.xml"
    libs_dir.mkdir(parents=True, exist_ok=True)
    log.info("kafka.resolve_jars", libs=str(libs_dir))
    proc = subprocess.run(
        [mvn, "-B", "-q", "-f", str(pom), "dependency:copy-dependencies", f"-DoutputDirectory={libs_dir}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0 or not _resolved(libs_dir):
        raise StackError(
            f"Maven could not resolve the Kafka jars:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )


def server_properties(node: KafkaNodeConfig, voters: str, cluster_size: int) -> str:
    """One node's configuration: KRaft on loopback, every node both broker and controller."""
    internal_rf = min(3, cluster_size)
    internal_isr = min(2, cluster_size)
    listeners = (
        node.secured.properties(node.port, node.controller_port)
        if node.secured
        else [
            f"listeners=PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{node.port}",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        ]
    )
    return "\n".join(
        [
            "process.roles=broker,controller",
            f"node.id={node.node_id}",
            f"controller.quorum.voters={voters}",
            *listeners,
            "controller.listener.names=CONTROLLER",
            f"log.dirs={node.data_dir}",
            "num.partitions=1",
            # Topics are declared (infra/topics.py); a typo must not create one.
            "auto.create.topics.enable=false",
            # Group offsets and transaction state survive a broker on a 3-node cluster.
            f"offsets.topic.replication.factor={internal_rf}",
            f"transaction.state.log.replication.factor={internal_rf}",
            f"transaction.state.log.min.isr={internal_isr}",
            f"share.coordinator.state.topic.replication.factor={internal_rf}",
            f"share.coordinator.state.topic.min.isr={internal_isr}",
            "group.initial.rebalance.delay.ms=0",
            f"message.max.bytes={MAX_MESSAGE_BYTES}",
            f"replica.fetch.max.bytes={MAX_MESSAGE_BYTES}",
            "log.retention.hours=24",
            "",
        ]
    )


class KafkaNode:
    """Format, launch, and stop one local KRaft node of a cluster."""

    def __init__(self, config: KafkaNodeConfig) -> None:
        self.config = config
        self.process = ManagedProcess(
            f"kafka-{config.node_id}",
            config.state_dir / f"broker-{config.node_id}.pid",
            config.state_dir / f"broker-{config.node_id}.stdout",
        )

    @property
    def properties_file(self) -> Path:
        return self.config.state_dir / f"server-{self.config.node_id}.properties"

    def running(self) -> bool:
        return self.process.pid() is not None

    def launch(self, java: str, voters: str, cluster_size: int, cluster_id: str) -> None:
        """Write the properties, format the storage on first start, and start the JVM."""
        cfg = self.config
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        self.properties_file.write_text(server_properties(cfg, voters, cluster_size))
        self.properties_file.chmod(0o600)  # a secured node's holds the admin and keystore passwords
        self._format(java, cluster_id)
        argv = [
            java,
            f"-Xmx{cfg.heap}",
            f"-Xms{cfg.heap}",
            "-XX:+UseG1GC",
            *self._common_jvm_args(),
            "kafka.Kafka",
            str(self.properties_file),
        ]
        self.process.start(argv)
        log.info("kafka.starting", bootstrap=cfg.bootstrap, log=str(cfg.log_file))

    def _common_jvm_args(self) -> list[str]:
        log_config = KAFKA_FILES / "log4j2.properties"
        return [
            f"-Dlog4j2.configurationFile={log_config}",
            f"-Dkafka.logs.file={self.config.log_file}",
            "-cp",
            f"{self.config.libs_dir}/*",
        ]

    def _format(self, java: str, cluster_id: str) -> None:
        if (self.config.data_dir / "meta.properties").exists():
            return
        proc = subprocess.run(
            [
                java,
                *self._common_jvm_args(),
                "kafka.tools.StorageTool",
                "format",
                # One token: a base64 id may start with "-", which a separate argument
                # would turn into an option (1 start in 64 failed so).
                f"--cluster-id={cluster_id}",
                "-c",
                str(self.properties_file),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise StackError(f"formatting the KRaft storage failed:\n{proc.stdout}{proc.stderr}")

    def tail(self) -> str:
        return log_tail(self.config.log_file) + "\n" + log_tail(self.process.log_file, 10)

    def stop(self, timeout_s: float = 30.0) -> bool:
        return self.process.stop(timeout_s)


def loopback_ports(size: int, port: int, controller_port: int) -> list[tuple[int, int]]:
    """(client, controller) port of each node of a local cluster: node ``i`` (from 0) uses
    ``port + 2i`` and ``controller_port + 2i``, so 19092/19093 give 19094/19095 next."""
    return [(port + 2 * i, controller_port + 2 * i) for i in range(size)]


class KafkaCluster:
    """N local KRaft nodes sharing one cluster id and controller quorum.

    One node is the development default; three give replicated topics that
    survive a broker (the broker-failure tests run on three).
    """

    def __init__(self, nodes: list[KafkaNodeConfig]) -> None:
        if not nodes:
            raise ValueError("a cluster needs at least one node")
        self.nodes = [KafkaNode(n) for n in nodes]

    @classmethod
    def on_loopback(
        cls,
        state_dir: Path,
        *,
        size: int = 1,
        port: int = 19092,
        controller_port: int = 19093,
        jars_dir: Path | None = None,
        secured: BrokerSecurity | None = None,
    ) -> KafkaCluster:
        """Nodes on the ports :func:`loopback_ports` gives."""
        return cls(
            [
                KafkaNodeConfig(
                    state_dir=state_dir,
                    port=client,
                    controller_port=controller,
                    node_id=i + 1,
                    jars_dir=jars_dir,
                    secured=secured,
                )
                for i, (client, controller) in enumerate(loopback_ports(size, port, controller_port))
            ]
        )

    @property
    def bootstrap(self) -> str:
        return ",".join(node.config.bootstrap for node in self.nodes)

    @property
    def admin(self) -> KafkaConnection:
        """How `kinfer up` itself connects: anonymous, or as the super user of a secured cluster."""
        secured = self.nodes[0].config.secured
        security = secured.admin if secured else KafkaSecurity()
        return KafkaConnection(bootstrap_servers=self.bootstrap, security=security)

    @property
    def voters(self) -> str:
        return ",".join(f"{n.config.node_id}@127.0.0.1:{n.config.controller_port}" for n in self.nodes)

    @property
    def libs_dir(self) -> Path:
        return self.nodes[0].config.libs_dir

    def running(self) -> list[KafkaNode]:
        return [node for node in self.nodes if node.running()]

    def start(self, *, timeout_s: float = 60.0) -> None:
        """Start the nodes that are not running (idempotent) and wait until all serve."""
        stopped = [node for node in self.nodes if not node.running()]
        if not stopped:
            log.info("kafka.already_running", bootstrap=self.bootstrap)
            return
        java = find_java()
        require_free_ports(
            {
                f"KINFER_KAFKA_{kind}PORT (node {node.config.node_id})": port
                for node in stopped
                for kind, port in (("", node.config.port), ("CONTROLLER_", node.config.controller_port))
            }
        )
        resolve_jars(self.libs_dir)
        cluster_id = self._cluster_id()
        for node in stopped:  # all at once: a controller quorum needs a majority to start
            node.launch(java, self.voters, len(self.nodes), cluster_id)
        self._wait_ready(timeout_s)

    def _cluster_id(self) -> str:
        """The id every node is formatted with; the data on disk must match this cluster's shape."""
        state_dir = self.nodes[0].config.state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        voters_file = state_dir / "cluster.voters"
        formatted = [n for n in self.nodes if (n.config.data_dir / "meta.properties").exists()]
        if formatted and voters_file.exists() and voters_file.read_text().strip() != self.voters:
            raise StackError(
                f"the Kafka data in {state_dir} belongs to a cluster with voters "
                f"{voters_file.read_text().strip()}, not {self.voters} (KINFER_KAFKA_BROKERS or the "
                f"ports changed): run `kinfer down` and remove {state_dir}/data-* to start afresh"
            )
        voters_file.write_text(self.voters)
        for node in formatted:  # data from before this file existed keeps its id
            meta = (node.config.data_dir / "meta.properties").read_text()
            found = re.search(r"^cluster\.id=(\S+)", meta, re.MULTILINE)
            if found:
                return found.group(1)
        path = state_dir / "cluster.id"
        if not path.exists():
            path.write_text(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))
        return path.read_text().strip()

    def _wait_ready(self, timeout_s: float) -> None:
        """Until a metadata request lists every node as a broker."""
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        admin = AdminClient(client_config(self.admin, {"log_level": 0}))
        deadline = time.monotonic() + timeout_s
        while True:
            for node in self.nodes:
                if node.process.exited():
                    self.stop()
                    raise StackError(
                        f"Kafka node {node.config.node_id} exited during start-up; "
                        f"last lines of its log:\n{node.tail()}"
                    )
            try:
                if len(admin.list_topics(timeout=1.0).brokers) >= len(self.nodes):
                    log.info("kafka.ready", bootstrap=self.bootstrap, brokers=len(self.nodes))
                    return
            except KafkaException:
                pass  # not up yet
            if time.monotonic() >= deadline:
                tails = "\n".join(node.tail() for node in self.nodes)
                self.stop(timeout_s=10)
                raise StartTimeout(
                    f"the Kafka broker did not answer a metadata request within {timeout_s:g}s "
                    f"(raise KINFER_STARTUP_TIMEOUT_S?); last lines of its log:\n{tails}"
                )
            time.sleep(0.25)

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop every node at once (one by one, the last would wait for a lost quorum)."""
        with ThreadPoolExecutor(max_workers=len(self.nodes)) as pool:
            return any(list(pool.map(lambda node: node.stop(timeout_s), self.nodes)))
