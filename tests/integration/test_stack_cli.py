"""`kinfer up / status / down` as a user runs them, and each of their clear errors."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

from kinfer.infra.stack.kafka import KafkaCluster
from kinfer.infra.stack.process import free_port
from tests.conftest import JARS, Services
from tests.integration.conftest import kinfer


def test_up_is_idempotent_and_down_stops_everything(own_stack_env: dict[str, str]) -> None:
    first = kinfer("up", "--services-only", env=own_stack_env)
    assert first.returncode == 0, first.stderr
    assert "topics created: 7" in first.stdout
    second = kinfer("up", "--services-only", env=own_stack_env)
    assert second.returncode == 0, second.stderr
    assert "topics: all present" in second.stdout
    status = kinfer("status", env=own_stack_env)
    assert status.stdout.count("running") == 2, status.stdout
    down = kinfer("down", env=own_stack_env)
    assert "stopped: redis, kafka" in down.stdout
    assert kinfer("status", env=own_stack_env).stdout.count("stopped") == 5  # 2 services, 3 stages
    assert "nothing was running" in kinfer("down", env=own_stack_env).stdout


def test_external_services_are_used_not_started(services: Services, prefix: str, tmp_path: Path) -> None:
    env = {**os.environ, **services.env(prefix), "KINFER_STATE_DIR": str(tmp_path)}
    result = kinfer("up", "--services-only", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("external") == 2
    assert not (tmp_path / "kafka").exists() and not (tmp_path / "redis").exists()


def test_missing_java_is_a_clear_error(own_stack_env: dict[str, str]) -> None:
    env = {**own_stack_env, "PATH": "/nonexistent"}
    env.pop("JAVA_HOME", None)
    result = kinfer("up", env=env)
    assert result.returncode == 1
    assert "error [unavailable]: java not found" in result.stderr


def test_missing_maven_is_a_clear_error(own_stack_env: dict[str, str], tmp_path: Path) -> None:
    java = shutil.which("java")
    assert java, "the suite needs Java (make setup installs it)"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "java").symlink_to(Path(java).resolve())
    env = {**own_stack_env, "PATH": str(bin_dir), "KINFER_KAFKA_JARS_DIR": str(tmp_path / "no-jars")}
    env.pop("JAVA_HOME", None)
    result = kinfer("up", env=env)
    assert result.returncode == 1
    assert "error [unavailable]: mvn (Apache Maven) not found" in result.stderr


def test_port_taken_names_the_port_and_setting(own_stack_env: dict[str, str]) -> None:
    port = int(own_stack_env["KINFER_KAFKA_PORT"])
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        result = kinfer("up", env=own_stack_env)
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "KINFER_KAFKA_PORT" in result.stderr


def test_broker_start_timeout_prints_log_tail_and_stops_it(own_stack_env: dict[str, str]) -> None:
    result = kinfer("up", "--startup-timeout-s", "0.3", env=own_stack_env)
    assert result.returncode == 1
    assert "did not answer a metadata request within 0.3s" in result.stderr
    assert "last lines of its log" in result.stderr
    assert "kafka     stopped" in kinfer("status", env=own_stack_env).stdout


def test_unreachable_redis_is_a_clear_error(services: Services, prefix: str) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    env = {**os.environ, **services.env(prefix), "KINFER_REDIS_URL": dead}
    result = kinfer("up", env=env)
    assert result.returncode == 1
    assert f"error [unavailable]: Redis at {dead} is not reachable" in result.stderr
    assert "unreachable" in kinfer("status", env=env).stdout


def test_bad_settings_are_refused_with_the_values(own_stack_env: dict[str, str]) -> None:
    env = {**own_stack_env, "KINFER_KAFKA_CONTROLLER_PORT": own_stack_env["KINFER_KAFKA_PORT"]}
    result = kinfer("status", env=env)
    assert result.returncode == 2
    assert "must differ" in result.stderr


def test_a_cluster_id_starting_with_a_dash_formats(tmp_path: Path) -> None:
    """Base64 ids start with "-" one time in 64; the storage tool must not read it as an option."""
    cluster = KafkaCluster.on_loopback(
        tmp_path / "kafka", port=free_port(), controller_port=free_port(), jars_dir=JARS
    )
    (tmp_path / "kafka").mkdir()
    (tmp_path / "kafka" / "cluster.id").write_text("-Zw8kTKeQzOVnZ0LnHBl3g")
    try:
        cluster.start(timeout_s=120)
        meta = (cluster.nodes[0].config.data_dir / "meta.properties").read_text()
        assert "cluster.id=-Zw8kTKeQzOVnZ0LnHBl3g" in meta
    finally:
        cluster.stop()
