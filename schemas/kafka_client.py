"""How every Kafka client of kinfer connects: one connection config, and the librdkafka
settings each confluent-kafka client starts from.

:class:`KafkaConnection` is the only declaration of the connection knobs (servers, security
protocol, SASL, TLS files); confluent-kafka clients take :func:`client_config`, and the
Faust stage turns the same object into aiokafka credentials (``streams/app.py``), so a
secured cluster (Confluent Cloud, MSK, Aiven, ``kinfer up --secure``) needs one setting per
process, not one per client.

librdkafka prints its own log lines (``%4|...|GETPID|...``) straight to stderr
unless a client is given a logger. Every client built from :func:`client_config`
hands them to the ``kinfer.librdkafka`` logger instead, so they come out through
kinfer's structured logs at their own level (``infra.logs`` decides what shows).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, SecretStr, model_validator

if TYPE_CHECKING:
    from confluent_kafka import Consumer, Message

LIBRDKAFKA_LOGGER = "kinfer.librdkafka"

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaSecurity(BaseModel):
    """Authentication and encryption of a Kafka connection; the defaults are a plaintext,
    anonymous local broker."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True, extra="forbid")

    protocol: SecurityProtocol = "PLAINTEXT"
    """PLAINTEXT, SSL (TLS), SASL_PLAINTEXT or SASL_SSL (SASL over TLS: what hosted clusters use)."""
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    """PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (with a SASL protocol)."""
    username: str | None = None
    """SASL user (the Kafka principal is ``User:<username>``)."""
    password: SecretStr | None = None
    """SASL password; never logged."""
    ca_file: Path | None = None
    """PEM CA bundle that signed the brokers' certificates; None = the system's CAs."""
    cert_file: Path | None = None
    """PEM client certificate, for brokers that authenticate clients by TLS (mutual TLS)."""
    key_file: Path | None = None
    """PEM private key of ``cert_file``."""

    @model_validator(mode="after")
    def _check(self) -> KafkaSecurity:
        if self.sasl and (self.username is None or self.password is None):
            raise ValueError(f"security protocol {self.protocol} needs a SASL username and password")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("a client certificate (cert_file) and its key (key_file) go together")
        if not self.tls and (self.ca_file or self.cert_file):
            raise ValueError(f"TLS files are set but security protocol {self.protocol} does not use TLS")
        return self

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.protocol.endswith("SSL")

    def librdkafka(self) -> dict[str, Any]:
        """The librdkafka properties of this security setup."""
        out: dict[str, Any] = {"security.protocol": self.protocol}
        if self.sasl:
            assert self.password is not None  # checked above
            out |= {
                "sasl.mechanism": self.sasl_mechanism,
                "sasl.username": self.username,
                "sasl.password": self.password.get_secret_value(),
            }
        files = {"ssl.ca.location": self.ca_file, "ssl.certificate.location": self.cert_file}
        files["ssl.key.location"] = self.key_file
        out |= {name: str(path) for name, path in files.items() if path is not None}
        return out


class KafkaConnection(BaseModel):
    """Where a Kafka cluster is and how to authenticate to it."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True, extra="forbid")

    bootstrap_servers: str = "127.0.0.1:19092"
    """Kafka bootstrap servers (host:port, comma-separated)."""
    security: KafkaSecurity = KafkaSecurity()
    """Authentication and encryption (plaintext and anonymous by default)."""

    def __str__(self) -> str:
        user = f" as {self.security.username}" if self.security.username else ""
        return f"{self.bootstrap_servers} ({self.security.protocol}{user})"


def client_config(kafka: KafkaConnection, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The connection (servers, security) and kinfer's logger, then the client's own
    librdkafka ``settings``."""
    logger = logging.getLogger(LIBRDKAFKA_LOGGER)
    base = {"bootstrap.servers": kafka.bootstrap_servers, **kafka.security.librdkafka()}
    return {**base, "logger": logger, **(settings or {})}


def take_available(consumer: Consumer, limit: int, timeout_s: float) -> list[Message]:
    """Up to ``limit`` records: wait at most ``timeout_s`` for the first, then take what else
    is there without waiting. (``consume(limit, timeout)`` returns only once ``limit``
    records are there or the timeout passed, so a lone record would wait the whole timeout.)"""
    first = consumer.poll(timeout_s)
    if first is None:
        return []
    return [first, *consumer.consume(limit - 1, 0)] if limit > 1 else [first]
