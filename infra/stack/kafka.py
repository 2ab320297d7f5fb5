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
from dataclasses import dataclass
from pathlib import Path

import structlog

from infra.errors import StackError, StartTimeout, ToolMissing
from infra.stack.process import ManagedProcess, log_tail, require_free_ports
from schemas.limits import MAX_MESSAGE_BYTES

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


def resolve_jars(libs_dir: Path) -> None:
    """Resolve the broker jars with Maven into ``libs_dir`` unless already there."""
    libs_dir = libs_dir.resolve()  # Maven resolves relative paths against the pom's folder
    if any(libs_dir.glob("kafka_2.13-*.jar")):
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
    if proc.returncode != 0 or not any(libs_dir.glob("kafka_2.13-*.jar")):
        raise StackError(
            f"Maven could not resolve the Kafka jars:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )


def server_properties(node: KafkaNodeConfig, voters: str) -> str:
    """The broker's configuration: single-host KRaft on loopback."""
    return "\n".join(
        [
            "process.roles=broker,controller",
            f"node.id={node.node_id}",
            f"controller.quorum.voters={voters}",
            f"listeners=PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{node.port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={node.data_dir}",
            "num.partitions=1",
            # Topics are declared (infra/topics.py); a typo must not create one.
            "auto.create.topics.enable=false",
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            f"message.max.bytes={MAX_MESSAGE_BYTES}",
            "log.retention.hours=24",
            "",
        ]
    )


class KafkaNode:
    """Start, wait for, and stop one local KRaft node."""

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

    def start(self, *, timeout_s: float = 60.0) -> None:
        """Idempotent: does nothing when this node already runs."""
        if self.running():
            log.info("kafka.already_running", bootstrap=self.config.bootstrap)
            return
        cfg = self.config
        java = find_java()
        require_free_ports(
            {"KINFER_KAFKA_PORT": cfg.port, "KINFER_KAFKA_CONTROLLER_PORT": cfg.controller_port}
        )
        resolve_jars(cfg.libs_dir)
        voters = f"{cfg.node_id}@127.0.0.1:{cfg.controller_port}"
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        self.properties_file.write_text(server_properties(cfg, voters))
        self._format(java)
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
        self._wait_ready(timeout_s)

    def _common_jvm_args(self) -> list[str]:
        log_config = KAFKA_FILES / "log4j2.properties"
        return [
            f"-Dlog4j2.configurationFile={log_config}",
            f"-Dkafka.logs.file={self.config.log_file}",
            "-cp",
            f"{self.config.libs_dir}/*",
        ]

    def _format(self, java: str) -> None:
        if (self.config.data_dir / "meta.properties").exists():
            return
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        proc = subprocess.run(
            [
                java,
                *self._common_jvm_args(),
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(self.properties_file),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise StackError(f"formatting the KRaft storage failed:\n{proc.stdout}{proc.stderr}")

    def _wait_ready(self, timeout_s: float) -> None:
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.config.bootstrap, "log_level": 0})
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.exited():
                raise StackError(
                    f"the Kafka broker exited during start-up; last lines of its log:\n{self._tail()}"
                )
            try:
                metadata = admin.list_topics(timeout=1.0)
                if metadata.brokers:
                    log.info("kafka.ready", bootstrap=self.config.bootstrap)
                    return
            except KafkaException:
                pass  # not up yet
            if time.monotonic() >= deadline:
                self.process.stop(timeout_s=10)
                raise StartTimeout(
                    f"the Kafka broker did not answer a metadata request within {timeout_s:g}s "
                    f"(raise KINFER_STARTUP_TIMEOUT_S?); last lines of its log:\n{self._tail()}"
                )
            time.sleep(0.25)

    def _tail(self) -> str:
        return log_tail(self.config.log_file) + "\n" + log_tail(self.process.log_file, 10)

    def stop(self, timeout_s: float = 30.0) -> bool:
        return self.process.stop(timeout_s)
