"""Where a worker sends what it owes a request, on linked clusters (regions as clusters).

A request this region's own admission routed is answered where it names. One that came
through a peer's copy of this region's dispatch topic belongs to a client of that peer: its
answer and outcome event go to their *return topics* here (``TopicNames.to_region``), which
MirrorMaker 2 mirrors to that peer alone. The worker's transaction (offsets, answers,
events) then never leaves its own cluster, and MirrorMaker's exactly-once flow carries only
what that transaction committed. On one cluster every request is home and nothing changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from kinfer.schemas import ReplyAddress, TopicNames


@dataclass(frozen=True)
class ReturnPath:
    names: TopicNames
    region: str

    def origin(self, source_topic: str) -> str | None:
        """The peer whose admission routed a record read from ``source_topic``; None: this region's."""
        origin = self.names.origin(source_topic, self.region)
        return None if origin == self.region else origin

    def address(self, address: ReplyAddress, source_topic: str) -> ReplyAddress:
        """Where the answer to ``address`` is produced in this cluster."""
        origin = self.origin(source_topic)
        if origin is None:
            return address
        return msgspec.structs.replace(address, topic=self.names.to_region(origin, address.topic))

    def events(self, source_topic: str) -> str:
        """Where the outcome of a record read from ``source_topic`` goes: its admission's."""
        origin = self.origin(source_topic)
        return self.names.events if origin is None else self.names.to_region(origin, self.names.events)
