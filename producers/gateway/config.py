"""The gateway's knobs."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from kinfer.schemas import DEFAULT_REGIONS


class GatewayConfig(BaseModel):
    """The OpenAI-compatible HTTP gateway."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True, extra="forbid")

    host: str = "127.0.0.1"
    """Listen address."""
    port: int = Field(default=8000, ge=1, le=65535)
    """HTTP port."""
    api_keys: dict[str, SecretStr] = Field(default_factory=dict)
    """Tenant -> API key (JSON). A request's key decides its tenant, and so its tier."""
    allow_anonymous: bool = False
    """Without a key, send as ``anonymous_tenant`` instead of answering 401 (development only)."""
    anonymous_tenant: str = "default"
    """Tenant of calls without a key when ``allow_anonymous`` is on."""
    regions: tuple[str, ...] = DEFAULT_REGIONS
    """Regions whose workers' heartbeats say which models are served (GET /v1/models)."""
    timeout_s: float = Field(default=60.0, gt=0)
    """Longest a call waits for its answer; past it: 504."""

    def tenant_for(self, key: str | None) -> str | None:
        if key is None:
            return self.anonymous_tenant if self.allow_anonymous else None
        for tenant, secret in self.api_keys.items():
            if secret.get_secret_value() == key:
                return tenant
        return None
