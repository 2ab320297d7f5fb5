"""Local services the pipeline runs on: Kafka (KRaft) and Redis."""
