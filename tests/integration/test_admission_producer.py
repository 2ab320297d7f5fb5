"""Admission's Kafka producer is idempotent: a retried send never writes a record twice."""

from __future__ import annotations

import asyncio

from kinfer.infra.stack import local
from kinfer.infra.topics import ensure_topics
from kinfer.streams.app import IdempotentProducer, create_app
from tests.conftest import Services


def test_admission_sends_with_an_idempotent_producer(services: Services, prefix: str) -> None:
    settings = services.settings(prefix)
    ensure_topics(settings.kafka, local.topic_layout(settings).specs())
    app = create_app(settings.admission_config())
    assert isinstance(app.producer, IdempotentProducer)

    async def built() -> object:
        client = app.producer._new_producer()
        # aiokafka keeps a transaction manager (producer id, sequence numbers) only when idempotent.
        manager = client._txn_manager
        await client.stop()
        return manager

    assert asyncio.run(built()) is not None
