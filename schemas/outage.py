"""When a stage may try Redis again during an outage, shared by every stage's Redis gate.

Redis only ever helps a decision (limits, cache, marks, heartbeats); while it is away each
stage uses its documented degraded behaviour. After a failed call Redis is taken as down
until a trial succeeds: one trial per ``retry_after_s``, never two at once, counted from
when the last one *failed* (a hung Redis fails a call only after its timeout: counted from
the start, the interval would already be over and every call would wait its timeout). A
stage with a probe makes the trial a short ping of its own, so no decision waits on a hung
Redis after the first; without one, the trial is the next call. Pure: the time is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class OutageWindow:
    retry_after_s: float = 1.0
    down_since: float | None = None
    next_try: float = 0.0
    trying: bool = False
    """A trial is in flight: no other starts until it ends (each would wait a full timeout)."""

    @property
    def up(self) -> bool:
        return self.down_since is None

    def may_try(self, now: float) -> bool:
        """Always while up; while down, True claims the one trial due at ``now``."""
        if self.down_since is None:
            return True
        if self.trying or now < self.next_try:
            return False
        self.trying = True
        return True

    def failed(self, now: float) -> bool:
        """Record a call that failed at ``now``; True when it begins an outage (say so, once)."""
        began = self.down_since is None
        if began:
            self.down_since = now
        self.next_try = now + self.retry_after_s
        self.trying = False
        return began

    def succeeded(self, now: float) -> float | None:
        """Record a call that worked; the outage's length when it ends one, else None."""
        self.trying = False
        if self.down_since is None:
            return None
        down_s, self.down_since = now - self.down_since, None
        return down_s

    def abandoned(self) -> None:
        """A trial ended without telling (a bug raised, or it was cancelled): allow the next."""
        self.trying = False
