"""The docs site's reference pages, generated from the code that they describe.

Settings, the CLI, error codes, metrics and alert rules, the wire contract: each is rendered from
its one declaration (pydantic fields, the typer app, ``ErrorCode`` and the SDK's exceptions, the
registered Prometheus collectors and ``rules.yml``, the JSON Schemas) into a marked block of a
page under ``docs/reference/``. ``python -m kinfer.infra.reference`` rewrites the blocks; a test
fails while a page is stale.
"""
