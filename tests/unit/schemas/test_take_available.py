"""take_available: block for the first record only (consume(n, t) would wait for n)."""

from __future__ import annotations

from kinfer.schemas.kafka_client import take_available


class FakeConsumer:
    def __init__(self, records: list[str]) -> None:
        self.records = records
        self.calls: list[tuple[str, float]] = []

    def poll(self, timeout: float) -> str | None:
        self.calls.append(("poll", timeout))
        return self.records.pop(0) if self.records else None

    def consume(self, limit: int, timeout: float) -> list[str]:
        self.calls.append(("consume", timeout))
        taken, self.records = self.records[:limit], self.records[limit:]
        return taken


def test_waits_for_the_first_record_only_then_takes_the_rest_at_once() -> None:
    consumer = FakeConsumer(["a", "b", "c", "d"])
    assert take_available(consumer, 3, 0.2) == ["a", "b", "c"]  # type: ignore[arg-type]
    assert consumer.calls == [("poll", 0.2), ("consume", 0)]
    assert take_available(consumer, 1, 0.2) == ["d"]  # type: ignore[arg-type]
    assert take_available(consumer, 3, 0.2) == []  # type: ignore[arg-type]
