"""Served models: the catalogue of what kinfer can pull, and the local store of what it has."""

from __future__ import annotations

from kinfer.infra.models.catalog import CATALOG, DEFAULT_MODEL, ModelSpec
from kinfer.infra.models.store import ModelStore, PulledModel

__all__ = ["CATALOG", "DEFAULT_MODEL", "ModelSpec", "ModelStore", "PulledModel"]
