"""When a stage may try Redis again during an outage, shared by every stage's Redis gate.

Redis only ever helps a decision (limits, cache, marks, heartbeats); while it is away each
stage uses its documented degraded behaviour. After a failed call Redis is taken as down
for ``retry_after_s``: calls in that window take the fallback without trying, so an outage
costs one short timeout per window, never one per record. Pure: the time is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class OutageWindow:
    retry_after_s: float = 1.0
    down_since: float | None = None
    next_try: float = 0.0

    @property
    def up(self) -> bool:
        return self.down_since is None

    def may_try(self, now: float) -> bool:
        return self.down_since is None or now >= self.next_try

    def failed(self, now: float) -> bool:
        """Record a failed call; True when it begins an outage (say so, once)."""
        began = self.down_since is None
        if began:
            self.down_since = now
        self.next_try = now + self.retry_after_s
        return began

    def succeeded(self, now: float) -> float | None:
        """Record a call that worked; the outage's length when it ends one, else None."""
        if self.down_since is None:
            return None
        down_s, self.down_since = now - self.down_since, None
        return down_s
