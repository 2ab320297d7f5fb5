"""The contract's reference pages: the error codes (from ``ErrorCode``, the SDK's exceptions and the
gateway's HTTP statuses) and the messages (from the checked-in JSON Schema files)."""

from __future__ import annotations

import inspect
import json
from typing import Any

from kinfer.infra import errors as stack_errors
from kinfer.infra.reference.markdown import cell
from kinfer.producers.errors import BY_CODE
from kinfer.producers.gateway.errors import HTTP_STATUS
from kinfer.schemas import ErrorCode, KinferError
from kinfer.schemas.errors import SERVER_ERRORS
from kinfer.schemas.jsonschema_gen import MESSAGES, SCHEMA_DIR

MESSAGE_TITLES = {name: "".join(part.title() for part in name.split("_")) for name in MESSAGES}


def summary(cls: type) -> str:
    return cell(inspect.cleandoc(cls.__doc__ or ""))


def yes(flag: bool) -> str:
    return "yes" if flag else "no"


def error_codes() -> str:
    """A row per wire error code: meaning, SDK exception, retry, health, HTTP status."""
    out = [
        "| code | meaning | SDK exception | retry? | server's fault? | gateway status | OpenAI `type` |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for code in ErrorCode:
        exc = BY_CODE[code]
        status, kind = HTTP_STATUS[code]
        out.append(
            f"| `{code.value}` | {summary(exc)} | `{exc.__name__}` | {yes(code.retriable)} "
            f"| {yes(code in SERVER_ERRORS)} | {status} | `{kind}` |"
        )
    out += [
        "",
        "Errors of running kinfer (`kinfer up` and the other commands print `error [code]: message`):",
        "",
    ]
    out += ["| exception | code | what to do |", "| --- | --- | --- |"]
    for cls in sorted(_subclasses(stack_errors.StackError), key=lambda c: c.__name__):
        out.append(f"| `{cls.__name__}` | `{cls.code.value}` | {summary(cls)} |")
    return "\n".join(out)


def _subclasses(root: type[KinferError]) -> list[type[KinferError]]:
    found = [root]
    for sub in root.__subclasses__():
        found += _subclasses(sub)
    return found


def type_of(prop: dict[str, Any]) -> str:
    """A property's JSON Schema type in words: ``integer or null``, ``array of ChatMessage``."""
    if "$ref" in prop:
        name = prop["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in prop:
        return " or ".join(type_of(p) for p in prop["anyOf"])
    if "enum" in prop:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in prop["enum"])
    if "const" in prop:
        return f"`{json.dumps(prop['const'])}`"
    kind = prop.get("type", "any")
    if kind == "array":
        return f"array of {type_of(prop.get('items', {}))}"
    if kind == "object" and isinstance(prop.get("additionalProperties"), dict):
        return f"object of {type_of(prop['additionalProperties'])}"
    return str(kind)


def fields_table(definition: dict[str, Any]) -> list[str]:
    required = set(definition.get("required", ()))
    out = ["| field | type | required / default | meaning |", "| --- | --- | --- | --- |"]
    for name, prop in definition.get("properties", {}).items():
        need = "required" if name in required else f"`{json.dumps(prop.get('default'))}`"
        if name not in required and "default" not in prop:
            need = "optional"
        out.append(f"| `{name}` | {type_of(prop)} | {need} | {cell(prop.get('description', ''))} |")
    return out


def definition_section(title: str, definition: dict[str, Any], source: str) -> list[str]:
    out = [f"### {title}", "", cell(definition.get("description", "")), ""]
    if source:
        out += [f"JSON Schema: `schemas/jsonschema/{source}`", ""]
    return [*out, *fields_table(definition), ""]


def wire_messages() -> str:
    """A section per message (its fields, types, defaults and meaning), then the types they use."""
    out: list[str] = []
    nested: dict[str, dict[str, Any]] = {}
    for name in MESSAGES:
        schema = json.loads((SCHEMA_DIR / f"{name}.json").read_text())
        title = MESSAGE_TITLES[name]
        defs = schema["$defs"]
        out += definition_section(title, defs[title], f"{name}.json")
        nested.update({k: v for k, v in defs.items() if k not in MESSAGE_TITLES.values()})
    out += ["## Types the messages use", ""]
    for title in sorted(nested):
        out += definition_section(title, nested[title], "")
    return "\n".join(out).rstrip()
