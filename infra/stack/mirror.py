"""MirrorMaker 2 between the regions' clusters (`kinfer up --regions`).

Kafka's own ``connect-mirror`` (``org.apache.kafka.connect.mirror.MirrorMaker``, what
``connect-mirror-maker.sh`` runs) in dedicated mode, with its properties written here. Every
ordered pair of regions is a flow that carries exactly what one cluster holds for the other:

- ``<prefix>.dispatch.<target>``: requests the source's admission routed to the target;
- ``<prefix>.to.<target>.*``: answers and outcome events the source's workers owe the
  target's clients and admission.

Nothing else crosses (so a record of a tenant served in one region never reaches another),
and nothing is mirrored twice: a flow only carries topics whose name says where they go.
Flows are exactly once (``exactly.once.source.support``) and read only committed records,
so a worker's aborted transaction is never mirrored and a committed answer arrives once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import structlog

from kinfer.infra.stack.kafka import KAFKA_FILES, find_java, resolve_jars
from kinfer.infra.stack.process import ManagedProcess, log_tail
from kinfer.schemas.topics import TopicNames

log = structlog.get_logger(__name__)

MIRROR_CLASS = "org.apache.kafka.connect.mirror.MirrorMaker"


@dataclass(frozen=True)
class Flow:
    source: str
    target: str

    def topics(self, names: TopicNames) -> list[str]:
        """The flow's topic filter: regular expressions, one of which a topic must match whole."""
        return [re.escape(names.dispatch(self.target)), re.escape(names.to_region(self.target, "")) + ".*"]


@dataclass(frozen=True)
class MirrorConfig:
    """The clusters MirrorMaker links and where it keeps its files."""

    bootstraps: dict[str, str]
    """Region -> its cluster's bootstrap servers."""
    names: TopicNames
    state_dir: Path
    libs_dir: Path
    replication: int = 1
    """Replication factor of MM2's own topics (offsets, configs, status, heartbeats, syncs)."""
    heap: str = "384m"

    def flows(self) -> list[Flow]:
        regions = list(self.bootstraps)
        return [Flow(s, t) for s in regions for t in regions if s != t]


def _for_properties(regex: str) -> str:
    """``regex`` as a Java properties file value: it reads a backslash as an escape, so each
    of the regex's backslashes is doubled."""
    return regex.replace("\\", "\\\\")


def mirror_properties(cfg: MirrorConfig) -> str:
    rf = cfg.replication
    lines = [
        f"clusters = {', '.join(cfg.bootstraps)}",
        *(f"{region}.bootstrap.servers = {servers}" for region, servers in cfg.bootstraps.items()),
        # Exactly once into every target; a source read sees only committed transactions.
        *(f"{region}.exactly.once.source.support = enabled" for region in cfg.bootstraps),
        *(f"{region}.consumer.isolation.level = read_committed" for region in cfg.bootstraps),
        *(f"{region}.producer.linger.ms = 0" for region in cfg.bootstraps),
        "tasks.max = 1",
        "replication.policy.class = org.apache.kafka.connect.mirror.DefaultReplicationPolicy",
        f"replication.factor = {rf}",
        *(
            f"{topic}.replication.factor = {rf}"
            for topic in ("checkpoints.topic", "heartbeats.topic", "offset-syncs.topic")
        ),
        *(f"{store}.storage.replication.factor = {rf}" for store in ("offset", "config", "status")),
        # A tenant's private reply topic made after start is picked up within seconds.
        "refresh.topics.interval.seconds = 5",
        "emit.heartbeats.interval.seconds = 1",
        "emit.checkpoints.interval.seconds = 5",
        "sync.group.offsets.enabled = false",
        # ACLs stay each cluster's own (a tenant exists where it may write); configs follow.
        "sync.topic.acls.enabled = false",
        "offset.flush.interval.ms = 1000",
        # Worker groups consume only in their own cluster; checkpoints still translate their
        # offsets, for an operator who moves a region's consumers to another cluster.
        f"groups = {_for_properties(re.escape(cfg.names.prefix))}-workers-.*",
    ]
    for flow in cfg.flows():
        lines.append(f"{flow.source}->{flow.target}.enabled = true")
        topics = ", ".join(_for_properties(regex) for regex in flow.topics(cfg.names))
        lines.append(f"{flow.source}->{flow.target}.topics = {topics}")
    return "\n".join(lines) + "\n"


class MirrorMaker:
    """The one MirrorMaker 2 process of a local multi-region stack."""

    def __init__(self, config: MirrorConfig) -> None:
        self.config = config
        folder = config.state_dir
        self.process = ManagedProcess(
            "mirror-maker", folder / "mirror-maker.pid", folder / "mirror-maker.stdout"
        )

    @property
    def properties_file(self) -> Path:
        return self.config.state_dir / "mirror-maker.properties"

    @property
    def log_file(self) -> Path:
        return self.config.state_dir / "mirror-maker.log"

    def running(self) -> bool:
        return self.process.pid() is not None

    def start(self) -> None:
        """Write the properties and start it unless it runs (idempotent)."""
        if self.running():
            return
        java = find_java()
        resolve_jars(self.config.libs_dir)
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        self.properties_file.write_text(mirror_properties(self.config))
        argv = [
            java,
            f"-Xmx{self.config.heap}",
            "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={KAFKA_FILES / 'log4j2.properties'}",
            f"-Dkafka.logs.file={self.log_file}",
            "-cp",
            f"{self.config.libs_dir}/*",
            MIRROR_CLASS,
            str(self.properties_file),
        ]
        self.process.start(argv)
        log.info("mirror.starting", flows=len(self.config.flows()), log=str(self.log_file))

    def exited(self) -> bool:
        return self.process.exited()

    def tail(self) -> str:
        return log_tail(self.log_file) + "\n" + log_tail(self.process.log_file, 10)

    def stop(self, timeout_s: float = 30.0) -> bool:
        return self.process.stop(timeout_s)
