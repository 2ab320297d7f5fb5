"""The faust-streaming / aiokafka pair and the Kafka version the docs promise (design/dependencies.md)."""

import re
from importlib.metadata import version
from pathlib import Path

from confluent_kafka.admin import AdminClient

from tests.conftest import Services

POM = Path(__file__).resolve().parents[2] / "infra" / "kafka" / "pom.xml"


def test_pinned_pair_is_installed() -> None:
    assert version("faust-streaming").startswith("0.15.")
    assert version("aiokafka").startswith("0.14.")


def test_broker_is_kafka_4_in_kraft_mode(services: Services) -> None:
    match = re.search(r"<kafka.version>(\d+)\.(\d+)\.(\d+)</kafka.version>", POM.read_text())
    assert match and int(match.group(1)) == 4
    metadata = AdminClient({"bootstrap.servers": services.bootstrap}).list_topics(timeout=10)
    assert metadata.cluster_id and metadata.controller_id >= 0
