"""`kinfer regions audit`: every record of a resident tenant found outside its region.

Scans every topic of every other region's cluster (all partitions, from the start, aborted
transactions included: they are stored too) and every key of its Redis. A record belongs
to a tenant when its key is the tenant (ingress, dispatch, events), it carries the tenant
header, or it carries a request id that the tenant's own cluster holds (answers are keyed by
request id). A Redis key belongs to it when the tenant is one of its segments (limits, delay
queue, signing keys) or it holds one of its request keys (idempotency, reservations,
cancels). Values are not read: a session or cache entry, keyed by a hash, is not attributed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import redis

from kinfer.infra.settings import KinferSettings
from kinfer.infra.stack.regions import each_region
from kinfer.infra.topic_reader import read_topics
from kinfer.schemas import InvalidMessage, headers
from kinfer.schemas.codec import decode_request
from kinfer.schemas.kafka_client import KafkaConnection
from kinfer.streams.routing.regions import RESIDENCY_REGIONS

INTERNAL = ("__consumer_offsets", "__transaction_state")
"""Kafka's own topics: offsets and transaction state, which hold no tenant's records."""


@dataclass(frozen=True)
class Finding:
    region: str
    where: str
    """``topic[partition]@offset`` or ``redis <key>``."""
    tenant: str
    why: str


def pinned_tenants(tenants: Mapping[str, tuple[str, str | None]]) -> dict[str, str]:
    """Tenant -> the one region it may live in (from the tier table's residencies)."""
    return {
        tenant: RESIDENCY_REGIONS.get(residency, f"<{residency}>")
        for tenant, (_, residency) in tenants.items()
        if residency
    }


def audit(settings: KinferSettings, pinned: Mapping[str, str], timeout_s: float = 30.0) -> list[Finding]:
    places = {place.region: place for place in each_region(settings)}
    ids = {
        t: home_request_ids(places[home].kafka, t, timeout_s) for t, home in pinned.items() if home in places
    }
    found: list[Finding] = []
    for region, place in places.items():
        outsiders = {t: ids.get(t, set()) for t, home in pinned.items() if home != region}
        if outsiders:
            found += scan_cluster(region, place.kafka, outsiders, timeout_s)
            found += scan_redis(region, place.redis, outsiders)
    return found


def home_request_ids(kafka: KafkaConnection, tenant: str, timeout_s: float) -> set[str]:
    """Request ids of ``tenant``'s requests in its own cluster's ingress topic."""
    out = set()
    for record in read_topics(kafka, lambda topic: topic.endswith(".requests"), timeout_s, committed=False):
        if record.key() == tenant.encode():
            try:
                out.add(decode_request(record.value() or b"").request_id)
            except InvalidMessage:
                continue
    return out


def scan_cluster(
    region: str, kafka: KafkaConnection, outsiders: Mapping[str, set[str]], timeout_s: float
) -> list[Finding]:
    found = []
    for record in read_topics(kafka, lambda topic: topic not in INTERNAL, timeout_s, committed=False):
        hdrs = headers.decode_headers(record.headers())
        where = f"{record.topic()}[{record.partition()}]@{record.offset()}"
        for tenant, request_ids in outsiders.items():
            why = _belongs(record.key(), hdrs, tenant, request_ids)
            if why:
                found.append(Finding(region, where, tenant, why))
    return found


def _belongs(key: bytes | None, hdrs: Mapping[str, str], tenant: str, request_ids: set[str]) -> str | None:
    if key == tenant.encode():
        return "record key is the tenant"
    if hdrs.get(headers.TENANT) == tenant:
        return "tenant header"
    rid = hdrs.get(headers.REQUEST_ID) or (key or b"").decode(errors="replace")
    return "one of its request ids" if rid in request_ids else None


def scan_redis(region: str, url: str, outsiders: Mapping[str, set[str]]) -> list[Finding]:
    client = redis.Redis.from_url(url)
    found = []
    try:
        for raw in client.scan_iter(count=1000):
            key = raw.decode(errors="replace")
            for tenant in outsiders:
                segments = key.split(":")
                if tenant in segments or f":{len(tenant)}:{tenant}:" in f"{key}:":
                    found.append(Finding(region, f"redis {key}", tenant, "key names the tenant"))
    finally:
        client.close()
    return found
