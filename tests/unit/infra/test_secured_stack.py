"""What `kinfer up --secure` makes and grants, without starting it: the material, each stage's
credentials, and the ACLs (a least-privilege matrix a test can read)."""

from __future__ import annotations

import stat
from collections import defaultdict
from pathlib import Path

import pytest

from kinfer.infra.acls import role_bindings, tenant_bindings
from kinfer.infra.env_vars import unknown_variables
from kinfer.infra.settings import KinferSettings
from kinfer.infra.stack.kafka import KafkaNodeConfig, server_properties
from kinfer.infra.stack.redis import RedisConfig, RedisTls, without_password
from kinfer.infra.stack.secure import BrokerSecurity, SecureFiles
from kinfer.schemas import TopicNames

NAMES = TopicNames("k")


def grants(bindings: list) -> dict[str, set[tuple[str, str, str]]]:  # type: ignore[type-arg]
    """principal -> {(operation, resource type, pattern:name)}"""
    out: dict[str, set[tuple[str, str, str]]] = defaultdict(set)
    for b in bindings:
        out[b.principal].add((b.operation.name, b.restype.name, f"{b.resource_pattern_type.name}:{b.name}"))
    return out


def test_each_role_may_touch_only_its_topics() -> None:
    g = grants(role_bindings(NAMES, "k-admission") + tenant_bindings(NAMES, "acme"))
    writes = {p: {r for op, kind, r in ops if op == "WRITE" and kind == "TOPIC"} for p, ops in g.items()}
    reads = {p: {r for op, kind, r in ops if op == "READ" and kind == "TOPIC"} for p, ops in g.items()}
    assert writes["User:tenant-acme"] == {"LITERAL:k.requests"}
    assert reads["User:tenant-acme"] == {"LITERAL:k.replies.acme"}
    assert writes["User:kinfer-gateway"] == {"LITERAL:k.requests"}
    assert reads["User:kinfer-gateway"] == {"PREFIXED:k.replies"}
    assert writes["User:kinfer-admission"] == {
        "PREFIXED:k.dispatch.",
        "PREFIXED:k.replies",
        "LITERAL:k.requests.dlq",
    }
    assert reads["User:kinfer-admission"] == {"LITERAL:k.requests", "LITERAL:k.events", "PREFIXED:k.replies"}
    assert writes["User:kinfer-worker"] == {
        "PREFIXED:k.replies",
        "LITERAL:k.events",
        "LITERAL:k.requests.dlq",
    }
    assert reads["User:kinfer-worker"] == {"PREFIXED:k.dispatch."}
    assert writes["User:kinfer-tuner"] == set() and reads["User:kinfer-tuner"] == {"LITERAL:k.events"}
    # Only workers write outcome events (breakers and token settlement trust them); only
    # admission writes dispatch; nobody but Faust's own topics is created (ALL on the app id).
    assert [p for p, w in writes.items() if "LITERAL:k.events" in w] == ["User:kinfer-worker"]
    assert [p for p, w in writes.items() if "PREFIXED:k.dispatch." in w] == ["User:kinfer-admission"]
    alls = {(p, r) for p, ops in g.items() for op, _, r in ops if op in ("ALL", "CREATE")}
    assert alls == {("User:kinfer-admission", "PREFIXED:k-admission")}


def test_secured_material_is_private_and_each_stage_connects_as_its_own_user(tmp_path: Path) -> None:
    settings = KinferSettings(state_dir=tmp_path, secure=True, redis_port=7000)
    assert settings.secured is not None
    creds = settings.secured.ensure()
    assert stat.S_IMODE(settings.secured.credentials_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "secure" / "ca.key").stat().st_mode) == 0o600
    assert settings.secured.keystore.exists() and settings.secured.ca_file.read_text().startswith(
        "-----BEGIN"
    )

    def user(config: object) -> str | None:
        return config.kafka.security.username  # type: ignore[attr-defined,no-any-return]

    assert user(settings.admission_config()) == "kinfer-admission"
    assert user(settings.worker_config()) == "kinfer-worker"
    assert settings.role_kafka("tuner").security.username == "kinfer-tuner"
    assert (
        settings.kafka.security.username == "kinfer-admin"
        and settings.kafka.security.sasl_mechanism == "PLAIN"
    )
    assert settings.admission_config().require_signatures and settings.admission_config().private_replies
    client = settings.client_config()
    assert user(client) == "tenant-default" and client.redis_url is None
    assert client.reply_topic == "kinfer.replies.default"
    assert client.signing_keys["default"] == creds.tenants["default"].key
    gateway = settings.gateway_client_config()
    assert user(gateway) == "kinfer-gateway" and gateway.reply_topic == "kinfer.replies"
    assert set(gateway.signing_keys) == set(creds.tenants)
    worker_redis = settings.worker_config().redis_url or ""
    assert worker_redis.startswith("rediss://kinfer-worker:")  # ACL user, TLS checked by the stack's CA
    assert creds.roles["worker"].get_secret_value() in worker_redis
    ca = tmp_path / "secure" / "ca.crt"
    assert without_password(worker_redis) == f"rediss://kinfer-worker:***@127.0.0.1:7000/0?ssl_ca_certs={ca}"
    # A second `up` keeps what the first made.
    assert SecureFiles(tmp_path / "secure").ensure() == creds


def test_a_secured_broker_speaks_only_sasl_ssl_and_denies_what_no_acl_allows(tmp_path: Path) -> None:
    files = SecureFiles(tmp_path)
    files.ensure()
    secured = BrokerSecurity(files.keystore, "pw", files.ca_file, files.admin_security())
    props = server_properties(
        KafkaNodeConfig(tmp_path, port=1, controller_port=2, secured=secured), "1@x:2", 1
    )
    assert "listeners=SASL_SSL://127.0.0.1:1,CONTROLLER://127.0.0.1:2" in props
    assert "PLAINTEXT://127.0.0.1:1" not in props
    assert "allow.everyone.if.no.acl.found=false" in props
    assert "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer" in props


def test_redis_acl_users_turn_the_default_user_off() -> None:
    config = RedisConfig(Path("."), users={"kinfer-admin": "a", "kinfer-worker": "w"})
    assert config.acl_lines() == [
        "user default off",
        "user kinfer-admin on >a ~* &* +@all",
        "user kinfer-worker on >w ~* &* +@all -@admin",
    ]
    assert config.url == "redis://kinfer-admin:a@127.0.0.1:16379/0"
    assert config.public_url == "redis://kinfer-admin:***@127.0.0.1:16379/0"
    tls = RedisTls(Path("c.crt"), Path("c.key"), Path("ca.crt"))
    assert "--tls-port" in tls.args(1) and tls.args(1)[:2] == ["--port", "0"]  # no plaintext port
    assert RedisConfig(Path("."), users=None, tls=tls).url == "rediss://127.0.0.1:16379/0?ssl_ca_certs=ca.crt"


@pytest.mark.parametrize("name", ["KINFER_KAFKA_SECURITY__PROTOCOL", "KINFER_KAFKA_SECURITY__PASSWORD"])
def test_the_connection_variables_are_settings(name: str) -> None:
    assert unknown_variables({name: "x"}) == []
