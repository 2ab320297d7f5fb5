"""Which KINFER_ variables are settings, and which set nothing (with the setting each most
likely means: a typo, or a name from before sections). Derived from the settings model, so a
knob added to a stage's config is a known variable without anyone listing it."""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from pydantic import BaseModel

from kinfer.infra.settings import COMPOSED, ENV_PREFIX, NESTED, SECTIONS, KinferSettings


def nested_shared() -> dict[str, type[BaseModel]]:
    """Shared settings that are models themselves, each field its own variable."""
    out: dict[str, type[BaseModel]] = {}
    for name, field in KinferSettings.model_fields.items():
        hint = field.annotation
        if name not in SECTIONS and isinstance(hint, type) and issubclass(hint, BaseModel):
            out[name] = hint
    return out


def env_names() -> set[str]:
    """Every KINFER_ variable that is a setting."""
    names = {f"{ENV_PREFIX}{name.upper()}" for name in KinferSettings.model_fields if name not in SECTIONS}
    for name, model in nested_shared().items():  # KINFER_KAFKA_SECURITY__PROTOCOL and the like
        names |= {f"{ENV_PREFIX}{name.upper()}{NESTED}{field.upper()}" for field in model.model_fields}
    for section, config in SECTIONS.items():
        names.add(f"{ENV_PREFIX}{section.upper()}")  # a whole section as JSON
        names |= {
            f"{ENV_PREFIX}{section.upper()}{NESTED}{name.upper()}"
            for name in config.model_fields
            if name not in COMPOSED[section]
        }
    return names


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """KINFER_ variables that set nothing (a typo, or a name from before sections), each with
    the setting it most likely means."""
    known = env_names()
    unknown = []
    for name in sorted(k for k in environ if k.upper().startswith(ENV_PREFIX) and k.upper() not in known):
        guess = _closest(name.upper(), known)
        unknown.append(f"{name} (did you mean {guess}?)" if guess else name)
    return unknown


def _closest(name: str, known: set[str]) -> str | None:
    field = name.removeprefix(ENV_PREFIX)
    same_field = sorted(k for k in known if k.endswith(f"{NESTED}{field}"))
    if same_field:
        return " or ".join(same_field)
    match = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
    return match[0] if match else None
