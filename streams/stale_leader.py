"""A fix for aiokafka 0.14's consumer after a broker failover: it asks a partition's stale
leader for offsets (ListOffsets) again and again, until its next metadata refresh.

When a partition has no committed offset, aiokafka's fetcher resets its position with a
ListOffsets request to the leader its metadata names. A broker that lost the leadership
(hung, then resumed) refuses with ``NotLeaderForPartition``; aiokafka logs "Failed fetch
offsets", sleeps its retry backoff and asks the same broker again, and nothing refreshes the
metadata before ``metadata_max_age_ms`` (5 minutes). The whole fetcher waits on it, so
admission stops consuming every topic meanwhile (found by the hung-broker test). Kafka's own
client refreshes its metadata on this error (KAFKA-9535); this does the same.
"""

from __future__ import annotations

from typing import Any

from aiokafka import errors
from aiokafka.consumer.fetcher import Fetcher

STALE_LEADER = (errors.NotLeaderForPartitionError, errors.UnknownTopicOrPartitionError)


def refresh_metadata_on_stale_leader() -> None:
    """Make every aiokafka fetcher of this process ask for fresh metadata when a ListOffsets
    request is refused because its metadata named the wrong leader. Idempotent."""
    original = Fetcher._proc_offset_request
    if getattr(original, "kinfer_refreshes", False):
        return

    async def proc_offset_request(self: Fetcher, node_id: int, topic_data: Any) -> Any:
        try:
            return await original(self, node_id, topic_data)
        except STALE_LEADER:
            self._client.force_metadata_update()  # the retry then goes to the new leader
            raise

    proc_offset_request.kinfer_refreshes = True  # type: ignore[attr-defined]
    Fetcher._proc_offset_request = proc_offset_request
