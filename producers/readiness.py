"""Fail fast when nothing would answer: is anyone consuming the pipeline's topics?

A request sent while no admission worker or no inference worker runs waits in
Kafka until its deadline. The consumer groups say at once whether anybody is
there: admission's group, and the worker group of at least one region.
"""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import ConsumerGroupState, KafkaException
from confluent_kafka.admin import AdminClient

from kinfer.producers.errors import Unavailable
from kinfer.schemas import TopicNames
from kinfer.schemas.kafka_client import KafkaConnection, client_config

CHECK_TIMEOUT_S = 3.0


class NothingServing(Unavailable):
    """No admission worker or no inference worker is running: start the one the message
    names (``kinfer up`` starts them all), or wait for them to join their groups."""


def check_consumers(kafka: KafkaConnection, names: TopicNames) -> None:
    """Raise :class:`NothingServing` unless admission and some region's workers have members.

    Blocking (admin calls, a few seconds at most): run it off the event loop.
    """
    admin = AdminClient(client_config(kafka))
    try:
        listed = admin.list_consumer_groups(request_timeout=CHECK_TIMEOUT_S).result()
    except KafkaException as exc:
        raise Unavailable(f"Kafka at {kafka} did not answer: {exc.args[0]}") from exc
    group_ids = [g.group_id for g in listed.valid]
    workers = [g for g in group_ids if g.startswith(names.worker_group(""))]
    members = _members(admin, [names.admission_group, *workers])
    if not members.get(names.admission_group):
        raise NothingServing(
            f"no admission worker is running (consumer group {names.admission_group} has no members): "
            "start `kinfer admission`, or the whole pipeline with `kinfer up`"
        )
    if not any(members.get(group) for group in workers):
        raise NothingServing(
            f"no inference worker is running (no {names.worker_group('<region>')} group has members): "
            "start `kinfer worker`, or the whole pipeline with `kinfer up`"
        )


def _members(admin: AdminClient, groups: Iterable[str]) -> dict[str, int]:
    """Members of each group that exists and is not dead or empty."""
    wanted = list(dict.fromkeys(groups))
    out: dict[str, int] = {}
    for group, future in admin.describe_consumer_groups(wanted, request_timeout=CHECK_TIMEOUT_S).items():
        try:
            described = future.result()
        except KafkaException:
            continue  # a group that does not exist has nobody in it
        if described.state not in (ConsumerGroupState.DEAD, ConsumerGroupState.EMPTY):
            out[group] = len(described.members)
    return out
