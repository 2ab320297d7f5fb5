"""Tiers and tenants, from a TOML file that is reloaded when it changes.

```toml
[tiers.pro]
requests_per_min = 1000
request_burst = 2000
tokens_per_min = 200000
token_burst = 400000
over_limit = "queue"        # or "reject"
priority = 1                # band: a saturated worker serves higher bands first (free: 0)
weight = 1.0                # share of its band's tokens against other tenants' (fair share)

[tenants.acme]
tier = "pro"
residency = "eu"            # optional: pins to eu-central
```
Tenants not listed are on the ``free`` tier with no residency.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import structlog

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Tier:
    name: str
    requests_per_min: float
    request_burst: float
    """Bucket size: requests admitted at once after a quiet spell."""
    tokens_per_min: float
    """Prompt tokens + max_tokens reserved at admission, settled with real usage."""
    token_burst: float
    over_limit: Literal["reject", "queue"]
    """Free tiers are refused (rate_limited); paid tiers wait in the delay queue."""
    priority: int = 0
    """Priority band: a saturated worker lets a higher band's waiting request join first (a
    share is kept for lower bands, see ``consumers/batching/fair.py``); the delay queue too."""
    weight: float = 1.0
    """A tenant's share of its band's tokens against the band's other tenants."""

    def __post_init__(self) -> None:
        for name in ("requests_per_min", "request_burst", "tokens_per_min", "token_burst"):
            if getattr(self, name) <= 0:
                raise ValueError(f"tier {self.name}: {name} must be > 0, got {getattr(self, name)}")
        if self.request_burst < 1:
            raise ValueError(f"tier {self.name}: request_burst must be >= 1")
        if not 0 <= self.priority <= 9:
            raise ValueError(f"tier {self.name}: priority must be in 0..9, got {self.priority}")
        if not 0.01 <= self.weight <= 100:
            raise ValueError(f"tier {self.name}: weight must be in 0.01..100, got {self.weight}")


DEFAULT_TIERS: Mapping[str, Tier] = {
    "free": Tier("free", 100, 200, 20_000, 40_000, "reject", priority=0),
    "pro": Tier("pro", 1_000, 2_000, 400_000, 800_000, "queue", priority=1),
    "enterprise": Tier("enterprise", 10_000, 20_000, 4_000_000, 8_000_000, "queue", priority=1, weight=2.0),
}


@dataclass(frozen=True)
class TenantPolicy:
    tier: Tier
    residency: str | None = None


@dataclass
class TierTable:
    tiers: Mapping[str, Tier] = field(default_factory=lambda: dict(DEFAULT_TIERS))
    tenants: Mapping[str, tuple[str, str | None]] = field(default_factory=dict)
    """tenant -> (tier name, residency)."""

    def policy(self, tenant: str) -> TenantPolicy:
        tier_name, residency = self.tenants.get(tenant, ("free", None))
        return TenantPolicy(self.tiers[tier_name], residency)

    @classmethod
    def parse(cls, text: str) -> TierTable:
        data = tomllib.loads(text)
        tiers = dict(DEFAULT_TIERS)
        for name, spec in data.get("tiers", {}).items():
            tiers[name] = Tier(name=name, **spec)
        tenants: dict[str, tuple[str, str | None]] = {}
        for tenant, spec in data.get("tenants", {}).items():
            tier = spec.get("tier", "free")
            if tier not in tiers:
                raise ValueError(f"tenant {tenant}: unknown tier {tier!r} (known: {sorted(tiers)})")
            tenants[tenant] = (tier, spec.get("residency"))
        return cls(tiers, tenants)


class ReloadingTierTable:
    """The table of a file, re-read when its modification time changes.

    A file that fails to parse keeps the last good table (and says so in the log).
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._mtime: float | None = None
        self.table = TierTable()
        self.reload()

    def reload(self) -> bool:
        """Re-read the file if it changed; True when a new table was loaded."""
        if self.path is None:
            return False
        mtime = self.path.stat().st_mtime
        if mtime == self._mtime:
            return False
        try:
            self.table = TierTable.parse(self.path.read_text())
        except (ValueError, TypeError, tomllib.TOMLDecodeError) as exc:
            log.error("tiers.reload_failed", path=str(self.path), error=str(exc))
            if self._mtime is None:
                raise
            return False
        self._mtime = mtime
        log.info("tiers.loaded", path=str(self.path), tenants=len(self.table.tenants))
        return True

    def policy(self, tenant: str) -> TenantPolicy:
        return self.table.policy(tenant)
