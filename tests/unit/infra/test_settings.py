from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from kinfer.consumers.config import WorkerConfig
from kinfer.consumers.pool.policy import PoolConfig
from kinfer.infra.settings import KinferSettings
from kinfer.producers.config import ClientConfig
from kinfer.producers.gateway.config import GatewayConfig
from kinfer.schemas.kafka_client import KafkaConnection
from kinfer.streams.config import AdmissionConfig


def test_defaults_work_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("KINFER_BOOTSTRAP_SERVERS", "KINFER_REDIS_URL", "KINFER_STATE_DIR"):
        monkeypatch.delenv(key, raising=False)
    s = KinferSettings()
    assert s.bootstrap == "127.0.0.1:19092" and not s.external_kafka
    assert s.redis == "redis://127.0.0.1:16379/0"
    assert s.state_dir.is_absolute()


def test_environment_builds_each_stage_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KINFER_BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    monkeypatch.setenv("KINFER_TOPIC_PREFIX", "prod")
    monkeypatch.setenv("KINFER_WORKER__MAX_WAIT_MS", "20")
    monkeypatch.setenv("KINFER_STATE_DIR", str(tmp_path))
    s = KinferSettings()
    assert s.external_kafka
    worker = s.worker_config()
    assert (worker.kafka.bootstrap_servers, worker.topic_prefix, worker.max_wait_ms) == (
        "k1:9092,k2:9092",
        "prod",
        20,
    )
    assert worker.consumer_group == "prod-workers-us-west"
    assert s.admission_config().faust_id == "prod-admission"
    assert s.client_config(tenant="acme").tenant == "acme"


def test_cross_field_errors_name_the_values() -> None:
    with pytest.raises(ValueError, match="both 20000"):
        KinferSettings(kafka_port=20000, kafka_controller_port=20000)
    with pytest.raises(ValueError, match="'mars' is not one of"):
        KinferSettings(region="mars")


def test_a_local_cluster_spreads_its_ports_and_replicates_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("KINFER_BOOTSTRAP_SERVERS", "KINFER_REPLICATION", "KINFER_KAFKA_BROKERS"):
        monkeypatch.delenv(key, raising=False)
    assert KinferSettings().topic_replication == 1
    three = KinferSettings(kafka_brokers=3)
    assert three.bootstrap == "127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096"
    assert three.topic_replication == 3
    assert KinferSettings(kafka_brokers=3, replication=2).topic_replication == 2
    assert KinferSettings(kafka_brokers=3, bootstrap_servers="k:9092").topic_replication == 1
    with pytest.raises(ValueError, match="collide"):
        KinferSettings(kafka_brokers=3, kafka_port=19092, kafka_controller_port=19094)


@pytest.mark.parametrize(
    "config", [ClientConfig, AdmissionConfig, WorkerConfig, GatewayConfig, PoolConfig, KafkaConnection]
)
def test_every_config_refuses_a_field_it_does_not_have(config: type[BaseModel]) -> None:
    """``ClientConfig(bootstrap_servers=...)`` (the field moved into ``kafka``) once connected
    to the default broker without a word; a misspelt or moved knob is an error naming it."""
    with pytest.raises(ValidationError, match="bootstrap_server"):
        config(bootstrap_server="kafka:9092")
