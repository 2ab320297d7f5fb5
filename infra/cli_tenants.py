"""`kinfer tenant add / rotate / retire`: tenants of a secured local stack (`kinfer up --secure`).

A tenant is a Kafka user (``tenant-<name>``, SCRAM) that may write requests and read only its
own reply topic, and a signing key that proves its requests to admission. Keys rotate with two
live at once: ``rotate`` makes a new current key and keeps the old one as ``previous`` (both
verify) until ``retire`` drops it.
"""

from __future__ import annotations

import json
from typing import Annotated

import redis
import typer

from kinfer.infra.cli_common import friendly, settings_from
from kinfer.infra.errors import StackError
from kinfer.infra.settings import KinferSettings
from kinfer.infra.stack.secure import SecureFiles, new_tenant_secret
from kinfer.streams.identity import tenant_keys_key

tenant_app = typer.Typer(help="Tenants of a secured local stack: users, reply topics, signing keys.")

Name = Annotated[str, typer.Argument(help="Tenant name (letters, digits, '.', '_', '-').")]


def _secured(settings: KinferSettings) -> SecureFiles:
    if settings.secured is None or not settings.secured.exists():
        raise StackError("no secured local stack here: start one with `kinfer up --secure`")
    return settings.secured


def _keys(settings: KinferSettings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis)


@tenant_app.command()
@friendly
def add(name: Name) -> None:
    """Make a tenant: its SCRAM user, private reply topic, ACLs and signing key; prints how its
    clients connect. Idempotent (an existing tenant keeps its secrets)."""
    from kinfer.infra.stack import local

    settings = settings_from()
    files = _secured(settings)
    creds = files.credentials()
    if name not in creds.tenants:
        creds.tenants[name] = new_tenant_secret()
        files.save(creds)
    local.up(settings.model_copy(update={"secure": True}))  # topic, user, ACLs, key in Redis
    secret = creds.tenants[name]
    client = settings.model_copy(update={"client": settings.client.model_copy(update={"tenant": name})})
    security = client.tenant_kafka(name).security
    typer.echo(
        f"tenant {name}: Kafka user {security.username}, reply topic {client.client_config().reply_topic}"
    )
    typer.echo("its clients connect with:")
    env = {
        "KINFER_BOOTSTRAP_SERVERS": settings.bootstrap,
        "KINFER_KAFKA_SECURITY__PROTOCOL": security.protocol,
        "KINFER_KAFKA_SECURITY__SASL_MECHANISM": security.sasl_mechanism,
        "KINFER_KAFKA_SECURITY__USERNAME": security.username,
        "KINFER_KAFKA_SECURITY__PASSWORD": secret.password.get_secret_value(),
        "KINFER_KAFKA_SECURITY__CA_FILE": str(files.ca_file),
        "KINFER_CLIENT__TENANT": name,
        "KINFER_CLIENT__PRIVATE_REPLIES": "true",
        "KINFER_CLIENT__VERIFY_REPLIES": "true",
        "KINFER_CLIENT__SIGNING_KEYS": json.dumps({name: secret.key.get_secret_value()}),
    }
    for var, value in env.items():
        typer.echo(f"  export {var}='{value}'")


@tenant_app.command()
@friendly
def rotate(name: Name) -> None:
    """A new signing key for the tenant; the old one still verifies until `kinfer tenant retire`."""
    settings = settings_from()
    files = _secured(settings)
    creds = files.credentials()
    if name not in creds.tenants:
        raise StackError(f"no tenant {name!r}: `kinfer tenant add {name}`")
    fresh = new_tenant_secret().key
    key = tenant_keys_key(settings.topic_prefix, name)
    store = _keys(settings)
    try:
        old = store.hget(key, "current")
        store.hset(key, mapping={"current": fresh.get_secret_value(), **({"previous": old} if old else {})})
    finally:
        store.close()
    creds.tenants[name] = creds.tenants[name].model_copy(update={"key": fresh})
    files.save(creds)
    typer.echo(
        f"tenant {name}: new signing key {fresh.get_secret_value()} (the previous one verifies until "
        f"`kinfer tenant retire {name}`)"
    )


@tenant_app.command()
@friendly
def retire(name: Name) -> None:
    """Stop accepting the tenant's previous signing key (after a rotation)."""
    settings = settings_from()
    _secured(settings)
    store = _keys(settings)
    try:
        dropped = store.hdel(tenant_keys_key(settings.topic_prefix, name), "previous")
    finally:
        store.close()
    typer.echo(f"tenant {name}: previous key {'retired' if dropped else 'was not there'}")
