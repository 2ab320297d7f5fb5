"""Inference workers: Kafka consumer loop, batching, the torch engine."""
