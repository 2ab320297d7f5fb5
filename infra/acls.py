"""Who may touch which topic on a secured cluster: Kafka ACLs per role and per tenant.

Kafka's StandardAuthorizer denies whatever no ACL allows (``allow.everyone.if.no.acl.found``
is false on `kinfer up --secure`), so these bindings are the whole of what each principal
may do. ``kinfer topics`` creates them (Kafka keeps an existing binding as it is).

- a tenant (``User:tenant-<name>``): write requests; read its own reply topic.
- the gateway: write requests; read every tenant's reply topic (it answers for API keys).
- admission: read requests and events (its Faust group and internal topics); write
  dispatch, replies, the requests DLQ; read replies (the answer ledger looks for a reply
  before it answers a re-delivered record).
- workers: read dispatch (their groups), write replies, events and the requests DLQ, in
  transactions.
- the tuner: read events; read the workers' committed offsets (lag).
Nobody but the admin creates topics, except Faust's own internal ones under the admission
application id.
"""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._acl import AclBinding, AclOperation, AclPermissionType
from confluent_kafka.admin._resource import ResourcePatternType, ResourceType
from confluent_kafka.admin._scram import (
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialUpsertion,
)

from kinfer.infra.errors import StackError
from kinfer.infra.stack.secure import kafka_user, tenant_user
from kinfer.producers.replies import REPLY_READER_GROUP
from kinfer.schemas import TopicNames
from kinfer.schemas.kafka_client import KafkaConnection, client_config

TOPIC, GROUP, TXN = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.TRANSACTIONAL_ID
LITERAL, PREFIXED = ResourcePatternType.LITERAL, ResourcePatternType.PREFIXED
READ, WRITE, DESCRIBE = AclOperation.READ, AclOperation.WRITE, AclOperation.DESCRIBE
Grant = tuple[ResourceType, str, ResourcePatternType, tuple[AclOperation, ...]]


def _bindings(user: str, grants: Iterable[Grant]) -> list[AclBinding]:
    return [
        AclBinding(kind, name, pattern, f"User:{user}", "*", op, AclPermissionType.ALLOW)
        for kind, name, pattern, ops in grants
        for op in ops
    ]


def role_bindings(names: TopicNames, admission_app_id: str) -> list[AclBinding]:
    """What the pipeline's own roles may do."""
    p = names.prefix
    dispatch = (TOPIC, f"{p}.dispatch.", PREFIXED)
    replies = (TOPIC, names.replies, PREFIXED)  # the shared topic and every tenant's
    workers = (GROUP, names.worker_group(""), PREFIXED)
    return [
        *_bindings(
            kafka_user("admission"),
            [
                (TOPIC, names.requests, LITERAL, (READ, DESCRIBE)),
                (TOPIC, names.events, LITERAL, (READ, DESCRIBE)),
                (*dispatch, (WRITE, DESCRIBE)),
                (*replies, (WRITE, READ, DESCRIBE)),
                (TOPIC, names.requests_dlq, LITERAL, (WRITE, DESCRIBE)),
                (TOPIC, admission_app_id, PREFIXED, (AclOperation.ALL,)),  # Faust's internal topics
                (GROUP, admission_app_id, PREFIXED, (READ, DESCRIBE)),
                (GROUP, "kinfer-answer-ledger", LITERAL, (READ, DESCRIBE)),
            ],
        ),
        *_bindings(
            kafka_user("worker"),
            [
                (*dispatch, (READ, DESCRIBE)),
                (*workers, (READ, DESCRIBE)),
                (TXN, names.worker_group(""), PREFIXED, (WRITE, DESCRIBE)),
                (*replies, (WRITE, DESCRIBE)),
                (TOPIC, names.events, LITERAL, (WRITE, DESCRIBE)),
                (TOPIC, names.requests_dlq, LITERAL, (WRITE, DESCRIBE)),
            ],
        ),
        *_bindings(
            kafka_user("tuner"),
            [
                (*dispatch, (DESCRIBE,)),
                (*workers, (DESCRIBE, READ)),
                (TOPIC, names.events, LITERAL, (READ, DESCRIBE)),
            ],
        ),
        *_bindings(
            kafka_user("gateway"),
            [
                (TOPIC, names.requests, LITERAL, (WRITE, DESCRIBE)),
                (*replies, (READ, DESCRIBE)),
                *_client_groups(names),
            ],
        ),
    ]


def _client_groups(names: TopicNames) -> list[Grant]:
    """What a client needs of groups: its reply reader's own (librdkafka looks up the
    coordinator of a consumer's group even when it only assigns), and seeing whether admission
    and workers have members (``check_consumers``: fail fast when nothing serves)."""
    return [
        (GROUP, REPLY_READER_GROUP, PREFIXED, (READ, DESCRIBE)),
        (GROUP, names.admission_group, LITERAL, (DESCRIBE,)),
        (GROUP, names.worker_group(""), PREFIXED, (DESCRIBE,)),
    ]


def tenant_bindings(names: TopicNames, tenant: str) -> list[AclBinding]:
    """A tenant's clients: send requests, read their own answers, nothing else."""
    return _bindings(
        tenant_user(tenant),
        [
            (TOPIC, names.requests, LITERAL, (WRITE, DESCRIBE)),
            (TOPIC, names.tenant_replies(tenant), LITERAL, (READ, DESCRIBE)),
            *_client_groups(names),
        ],
    )


def ensure_acls(kafka: KafkaConnection, bindings: list[AclBinding], timeout_s: float = 30.0) -> None:
    """Create the bindings (idempotent: an existing one is left as it is)."""
    admin = AdminClient(client_config(kafka, {"log_level": 0}))
    for binding, future in admin.create_acls(bindings, request_timeout=timeout_s).items():
        try:
            future.result()
        except KafkaException as exc:
            raise StackError(f"creating ACL {binding} failed: {exc.args[0]}") from exc


def ensure_scram_users(kafka: KafkaConnection, users: dict[str, str], timeout_s: float = 30.0) -> None:
    """Set each user's SCRAM-SHA-512 password (creating the user)."""
    admin = AdminClient(client_config(kafka, {"log_level": 0}))
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192)
    upserts: list[UserScramCredentialAlteration] = [
        UserScramCredentialUpsertion(user, info, pw.encode()) for user, pw in users.items()
    ]
    for user, future in admin.alter_user_scram_credentials(upserts, request_timeout=timeout_s).items():
        try:
            future.result()
        except KafkaException as exc:
            raise StackError(f"setting the SCRAM password of {user} failed: {exc.args[0]}") from exc
