"""Micro-batching policy: pure logic, tested with no Kafka and no torch."""
