"""aiokafka's fetcher asks for fresh metadata when a stale leader refuses a ListOffsets."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import errors
from aiokafka.consumer.fetcher import Fetcher

from kinfer.streams.stale_leader import refresh_metadata_on_stale_leader


class Client:
    def __init__(self) -> None:
        self.refreshes = 0

    def force_metadata_update(self) -> None:
        self.refreshes += 1


def test_a_refused_offset_lookup_refreshes_the_metadata_and_still_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers: list[Any] = [errors.NotLeaderForPartitionError(), {"t": 1}]

    async def offsets_from_the_leader_it_knows(self: Fetcher, node_id: int, topic_data: Any) -> Any:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(Fetcher, "_proc_offset_request", offsets_from_the_leader_it_knows)
    refresh_metadata_on_stale_leader()
    refresh_metadata_on_stale_leader()  # idempotent: one wrapper, one refresh per refusal
    fetcher = Fetcher.__new__(Fetcher)
    fetcher._client = client = Client()
    with pytest.raises(errors.NotLeaderForPartitionError):  # aiokafka's own retry takes it from here
        asyncio.run(fetcher._proc_offset_request(2, {}))
    assert client.refreshes == 1
    assert asyncio.run(fetcher._proc_offset_request(1, {})) == {"t": 1}
    assert client.refreshes == 1
