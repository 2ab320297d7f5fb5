"""Faust (aiokafka) connects with the same connection config as the confluent-kafka clients."""

from __future__ import annotations

import ssl

import faust
from pydantic import SecretStr

from kinfer.schemas.kafka_client import KafkaConnection, KafkaSecurity
from kinfer.streams.app import faust_broker_url, faust_credentials


def scram(**kw: object) -> KafkaSecurity:
    fields: dict[str, object] = {"protocol": "SASL_SSL", "username": "u", "password": SecretStr("s3cret")}
    return KafkaSecurity(**(fields | kw))  # type: ignore[arg-type]


def test_faust_gets_the_same_connection() -> None:
    assert faust_broker_url(KafkaConnection(bootstrap_servers="a:1, b:2")) == "kafka://a:1;kafka://b:2"
    assert faust_credentials(KafkaSecurity()) is None
    sasl = faust_credentials(scram())
    assert isinstance(sasl, faust.SASLCredentials)
    assert (sasl.username, sasl.password, sasl.mechanism.value) == ("u", "s3cret", "SCRAM-SHA-512")
    assert isinstance(sasl.ssl_context, ssl.SSLContext) and sasl.protocol.value == "SASL_SSL"
    plain_sasl = faust_credentials(scram(protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN"))
    assert isinstance(plain_sasl, faust.SASLCredentials) and plain_sasl.ssl_context is None
    assert isinstance(faust_credentials(KafkaSecurity(protocol="SSL")), faust.SSLCredentials)
