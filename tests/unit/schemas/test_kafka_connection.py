"""One connection config feeds confluent-kafka and Faust alike; secrets never show."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from kinfer.schemas.kafka_client import KafkaConnection, KafkaSecurity, client_config


def scram(**kw: object) -> KafkaSecurity:
    fields: dict[str, object] = {
        "protocol": "SASL_SSL",
        "username": "u",
        "password": SecretStr("s3cret"),
        **kw,
    }
    return KafkaSecurity(**fields)  # type: ignore[arg-type]


def test_plaintext_by_default_and_sasl_ssl_as_librdkafka_settings(tmp_path: Path) -> None:
    plain = client_config(KafkaConnection(), {"acks": "all"})
    assert plain["security.protocol"] == "PLAINTEXT" and plain["acks"] == "all"
    assert "sasl.username" not in plain
    ca = tmp_path / "ca.pem"
    conf = client_config(KafkaConnection(bootstrap_servers="b:9093", security=scram(ca_file=ca)))
    assert conf["bootstrap.servers"] == "b:9093"
    assert (conf["security.protocol"], conf["sasl.mechanism"]) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (conf["sasl.username"], conf["sasl.password"], conf["ssl.ca.location"]) == ("u", "s3cret", str(ca))


def test_the_password_never_shows_in_reprs_or_messages() -> None:
    connection = KafkaConnection(security=scram())
    assert "s3cret" not in repr(connection) and "s3cret" not in str(connection)
    assert str(connection) == "127.0.0.1:19092 (SASL_SSL as u)"


@pytest.mark.parametrize(
    ("fields", "msg"),
    [
        ({"protocol": "SASL_SSL"}, "needs a SASL username and password"),
        ({"protocol": "SSL", "cert_file": "c.pem"}, "go together"),
        ({"protocol": "PLAINTEXT", "ca_file": "ca.pem"}, "does not use TLS"),
        (
            {"protocol": "SASL_SSL", "username": "u", "password": "p", "sasl_mechanism": "GSSAPI"},
            "sasl_mechanism",
        ),
    ],
)
def test_contradictory_security_is_refused_naming_the_problem(fields: dict[str, object], msg: str) -> None:
    with pytest.raises(ValidationError, match=msg):
        KafkaSecurity(**fields)  # type: ignore[arg-type]
