"""A secured pipeline (`kinfer up --secure`) attacked the way a hostile client would, with
plain confluent-kafka clients: each attack must fail, with the error the attacker sees.

The stack is started once, as a user starts it; the attacker is anonymous, or a tenant
(``acme``, made by `kinfer tenant add`) holding its own credentials and nothing else.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from pydantic import SecretStr

from kinfer.infra.stack.process import free_port
from kinfer.infra.stack.secure import SecureFiles
from kinfer.producers import AsyncClient, Cancelled, ClientConfig, Unauthenticated
from kinfer.schemas import (
    ErrorReply,
    InferenceRequest,
    InferenceResult,
    InvalidMessage,
    ReplyAddress,
    SamplingParams,
    TopicNames,
    Usage,
    decode_dead_letter,
    decode_reply,
    encode,
)
from kinfer.schemas.codec import request_headers
from kinfer.schemas.kafka_client import KafkaConnection, KafkaSecurity, client_config
from kinfer.schemas.signing import SIGNATURE, sign
from tests.integration.conftest import JARS, kinfer

NAMES = TopicNames()


class SecuredStack:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.files = SecureFiles(Path(env["KINFER_STATE_DIR"]) / "secure")
        self.bootstrap = f"127.0.0.1:{env['KINFER_KAFKA_PORT']}"

    def kafka(self, security: KafkaSecurity) -> KafkaConnection:
        return KafkaConnection(bootstrap_servers=self.bootstrap, security=security)

    def tenant(self, name: str) -> KafkaConnection:
        return self.kafka(self.files.tenant_security(name))

    def admin(self) -> KafkaConnection:
        return self.kafka(self.files.admin_security())

    def tenant_key(self, name: str) -> str:
        return self.files.credentials().tenants[name].key.get_secret_value()


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredStack]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KINFER_")}
    env |= {
        "KINFER_STATE_DIR": str(tmp_path_factory.mktemp("secured") / "state"),
        "KINFER_KAFKA_JARS_DIR": str(JARS),
        "KINFER_KAFKA_PORT": str(free_port()),
        "KINFER_KAFKA_CONTROLLER_PORT": str(free_port()),
        "KINFER_REDIS_PORT": str(free_port()),
        "KINFER_GATEWAY__PORT": str(free_port()),
        "KINFER_WORKER__MODEL": "kinfer-tiny",
    }
    try:
        up = kinfer("up", "--secure", env=env, timeout=300)
        assert up.returncode == 0, up.stdout + up.stderr
        added = kinfer("tenant", "add", "acme", env=env)
        assert added.returncode == 0, added.stdout + added.stderr
        yield SecuredStack(env)
    finally:
        kinfer("down", env=env)


def delivery_errors(kafka: KafkaConnection, topic: str, records: int = 1, **record: Any) -> list[KafkaError]:
    """Write ``records`` records to ``topic``; the error each one got (None: delivered).

    A refusal comes either through the delivery callback or, once librdkafka has cached the
    topic's authorization failure in its metadata, from ``produce()`` itself: both mean the
    broker refused the record, so both are counted (one error per record either way)."""
    errors: list[KafkaError] = []
    producer = Producer(client_config(kafka, {"message.timeout.ms": 15_000}))
    for _ in range(records):
        try:
            producer.produce(topic, value=b"{}", on_delivery=lambda err, _msg: errors.append(err), **record)
        except KafkaException as exc:
            errors.append(exc.args[0])
    producer.flush(30)
    return errors


def read_attempt(kafka: KafkaConnection, topic: str, partitions: int) -> tuple[int, KafkaError | None]:
    """Reading every partition of ``topic`` from its start for a while: (records read, the error
    the broker gave when asked for its offsets)."""
    consumer = Consumer(client_config(kafka, {"group.id": f"kinfer-reply-{uuid.uuid4().hex}"}))
    error = None
    try:
        consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    except KafkaException as exc:
        error = exc.args[0]
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    read = 0
    try:
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            read += msg is not None and msg.error() is None
        return read, error
    finally:
        consumer.close()


def records_in(kafka: KafkaConnection, topic: str) -> tuple[int, int]:
    """(records, partitions) of ``topic``."""
    consumer = Consumer(client_config(kafka, {"group.id": f"audit-{uuid.uuid4().hex}"}))
    try:
        partitions = len(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        total = 0
        for p in range(partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            total += high - low
        return total, partitions
    finally:
        consumer.close()


def authorization_failed(err: KafkaError | None) -> bool:
    return err is not None and err.code() in (
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
    )


def test_secure_up_answers_the_cli_and_the_gateway_and_refuses_anonymous(secured: SecuredStack) -> None:
    answer = kinfer("submit", "hello", env=secured.env)
    assert answer.returncode == 0 and answer.stdout.strip(), answer.stderr

    key = (Path(secured.env["KINFER_STATE_DIR"]) / "gateway" / "dev-api-key").read_text().strip()
    body = {"model": "kinfer-tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    port = secured.env["KINFER_GATEWAY__PORT"]
    reply = httpx.post(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )
    assert reply.status_code == 200, reply.text

    # Anonymous: a plaintext client gets no metadata at all (the listener speaks only SASL_SSL).
    anonymous = AdminClient({"bootstrap.servers": secured.bootstrap, "log_level": 0})
    with pytest.raises(KafkaException):
        anonymous.list_topics(timeout=5)
    # A wrong password fails SASL authentication.
    wrong = secured.files.tenant_security("acme").model_copy(update={"password": SecretStr("guess")})
    with pytest.raises(KafkaException) as refused:
        AdminClient(client_config(secured.kafka(wrong), {"log_level": 0})).list_topics(timeout=10)
    assert refused.value.args[0].code() in (KafkaError._AUTHENTICATION, KafkaError._TRANSPORT)
    # Redis speaks only TLS, and its default user is off.
    port = int(secured.env["KINFER_REDIS_PORT"])
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=port, socket_timeout=5).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={secured.files.ca_file}").ping()


def test_a_tenant_sees_only_its_topics_and_creates_none(secured: SecuredStack) -> None:
    admin = AdminClient(client_config(secured.tenant("acme"), {"log_level": 0}))
    assert set(admin.list_topics(timeout=10).topics) == {NAMES.requests, NAMES.tenant_replies("acme")}
    created = admin.create_topics([NewTopic("acme.own-topic", 1, 1)], request_timeout=15)
    with pytest.raises(KafkaException) as refused:
        created["acme.own-topic"].result()
    assert authorization_failed(refused.value.args[0])


def test_a_tenant_cannot_write_past_admission_nor_forge_replies_or_outcomes(secured: SecuredStack) -> None:
    acme = secured.tenant("acme")
    # 250 records straight to a dispatch topic (they skipped admission, with a forged rate-limit
    # header): each one refused by the broker.
    forged_stamp = [("kinfer-ratelimit", b'{"limit_requests": 1000000}')]
    errors = delivery_errors(acme, NAMES.dispatch("us-west"), 250, headers=forged_stamp)
    assert len(errors) == 250 and all(authorization_failed(e) for e in errors)
    # A forged answer into the tenant's own reply partition, or another tenant's.
    for topic in (NAMES.tenant_replies("acme"), NAMES.tenant_replies("default"), NAMES.replies):
        (err,) = delivery_errors(acme, topic, 1)
        assert authorization_failed(err), topic
    # Forged `internal` outcome events, which would open a region's breaker.
    errors = delivery_errors(acme, NAMES.events, 20)
    assert all(authorization_failed(e) for e in errors)


def test_a_tenant_cannot_read_other_answers_or_dead_letters(secured: SecuredStack) -> None:
    acme, admin = secured.tenant("acme"), secured.admin()
    # Records the tenant would want: another tenant's answer, every gateway answer, dead letters.
    assert kinfer("submit", "for default's eyes only", env=secured.env).returncode == 0
    assert delivery_errors(admin, NAMES.requests_dlq, 1) == [None]
    wanted = (NAMES.tenant_replies("default"), NAMES.replies, NAMES.requests_dlq, NAMES.dispatch("us-west"))
    for topic in wanted:
        records, partitions = records_in(admin, topic)
        assert records > 0, f"nothing in {topic}: the check below would prove nothing"
        read, error = read_attempt(acme, topic, partitions)
        # Kafka does not even say the topic exists to a user who may not describe it.
        hidden = error is not None and error.code() in (
            KafkaError._UNKNOWN_PARTITION,
            KafkaError._UNKNOWN_TOPIC,
        )
        assert read == 0 and (hidden or authorization_failed(error)), (topic, read, error)


def test_requests_naming_another_tenant_or_unsigned_are_unauthenticated(secured: SecuredStack) -> None:
    acme = secured.tenant("acme")
    reply_to = ReplyAddress(NAMES.tenant_replies("acme"), 0)
    consumer = Consumer(client_config(acme, {"group.id": f"kinfer-reply-{uuid.uuid4().hex}"}))
    consumer.assign([TopicPartition(reply_to.topic, 0, 0)])
    producer = Producer(client_config(acme))
    cases = {
        # tenant "default" claimed, signed with acme's own key
        "impostor": ("default", secured.tenant_key("acme")),
        # acme itself, but no signature
        "unsigned": ("acme", None),
        # acme, signed with a key that is not acme's
        "wrong-key": ("acme", "00" * 32),
    }
    sent: dict[str, str] = {}
    for case, (tenant, key) in cases.items():
        request = InferenceRequest(
            request_id=f"{case}-{uuid.uuid4().hex}",
            tenant=tenant,
            prompt="spend their quota",
            reply_to=reply_to,
            sampling=SamplingParams(max_tokens=4),
            deadline_ms=int(time.time() * 1000) + 60_000,
        )
        value = encode(request)
        hdrs = request_headers(request)
        if key is not None:
            hdrs.append((SIGNATURE, sign(key, request.request_id, tenant, request.deadline_ms, value)))
        producer.produce(NAMES.requests, key=tenant.encode(), value=value, headers=hdrs)
        sent[request.request_id] = case
    assert producer.flush(30) == 0

    answers: dict[str, ErrorReply] = {}
    deadline = time.monotonic() + 60
    while len(answers) < len(sent) and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is not None and msg.error() is None:
            reply = decode_reply(msg.value())
            if reply.request_id in sent and isinstance(reply, ErrorReply):
                answers[reply.request_id] = reply
    consumer.close()
    assert set(answers) == set(sent), f"missing answers for {set(sent) - set(answers)}"
    for rid, reply in answers.items():
        assert reply.code == "unauthenticated", (sent[rid], reply)
        assert "not proven" in reply.message
    assert "not signed" in next(r.message for rid, r in answers.items() if sent[rid] == "unsigned")

    # Each refusal is kept in the DLQ with its reason (read as the admin: tenants may not).
    admin = Consumer(client_config(secured.admin(), {"group.id": f"audit-{uuid.uuid4().hex}"}))
    admin.assign([TopicPartition(NAMES.requests_dlq, 0, 0)])
    reasons: dict[str, str] = {}
    deadline = time.monotonic() + 30
    while len(reasons) < len(sent) and time.monotonic() < deadline:
        msg = admin.poll(1.0)
        if msg is not None and msg.error() is None:
            try:
                letter = decode_dead_letter(msg.value())
            except InvalidMessage:
                continue  # the audit record an earlier test wrote
            if letter.request_id in sent:
                reasons[letter.request_id] = letter.reason
    admin.close()
    assert set(reasons) == set(sent) and all("not proven" in r for r in reasons.values()), reasons


def test_a_forged_answer_even_from_inside_is_counted_and_dropped(secured: SecuredStack) -> None:
    """The ACLs keep tenants from writing replies; should a writer get through anyway (here the
    admin), the client still takes only the answer the pipeline signed for its request."""
    config = acme_client(secured, secured.tenant_key("acme"))
    insider = Producer(client_config(secured.admin()))

    class ForgingFirst(AsyncClient):
        async def _publish(self, request: InferenceRequest) -> None:
            forged = InferenceResult(
                request_id=request.request_id,
                text="forged",
                finish_reason="stop",
                usage=Usage(1, 1),
                model="x",
            )
            insider.produce(self.router.topic, value=encode(forged), partition=self.router.partition)
            insider.flush(10)
            await super()._publish(request)

    async def ask() -> tuple[str, int]:
        async with ForgingFirst(config) as client:
            result = await client.generate("hello", sampling=SamplingParams(max_tokens=4))
            return result.text, client.router.stats.forged

    text, forged = asyncio.run(ask())
    assert text != "forged" and forged == 1


def acme_client(secured: SecuredStack, key: str, reply_partition: int | None = None) -> ClientConfig:
    return ClientConfig(
        kafka=secured.tenant("acme"),
        tenant="acme",
        private_replies=True,
        signing_keys={"acme": SecretStr(key)},
        verify_replies=True,
        timeout_s=30,
        reply_partition=reply_partition,
    )


def answered_with(secured: SecuredStack, key: str) -> bool:
    """Whether a request signed with ``key`` is answered (False: refused ``unauthenticated``)."""

    async def ask() -> bool:
        async with AsyncClient(acme_client(secured, key)) as client:
            try:
                await client.generate("hello", sampling=SamplingParams(max_tokens=2))
            except Unauthenticated:
                return False
            return True

    return asyncio.run(ask())


def until(condition: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    """Admission reads a tenant's keys again a few seconds after it last did (KEYS_FRESH_S)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
    return False


def test_rotation_keeps_both_keys_live_until_the_old_one_is_retired(secured: SecuredStack) -> None:
    old = secured.tenant_key("acme")
    assert answered_with(secured, old)
    rotated = kinfer("tenant", "rotate", "acme", env=secured.env)
    assert rotated.returncode == 0, rotated.stderr
    new = secured.tenant_key("acme")
    assert new != old and new in rotated.stdout
    assert until(lambda: answered_with(secured, new)) and answered_with(secured, old)  # both live
    assert kinfer("tenant", "retire", "acme", env=secured.env).returncode == 0
    assert until(lambda: not answered_with(secured, old)) and answered_with(secured, new)
    exported = json.loads(
        next(
            line.split("=", 1)[1].strip("'")
            for line in kinfer("tenant", "add", "acme", env=secured.env).stdout.splitlines()
            if "SIGNING_KEYS" in line
        )
    )
    assert exported == {"acme": new}


def test_only_the_requests_own_tenant_can_cancel_it(secured: SecuredStack) -> None:
    """A cancel is proven like a request: one signed with another key is refused
    ``unauthenticated`` and stops nothing; the tenant's own stops it."""
    long = SamplingParams(max_tokens=900, logit_bias={257: -100})  # kinfer-tiny, end of text banned

    async def scenario() -> tuple[str, str | None, str, str]:
        # Partitions of their own: with a random one each (no Redis lease here) they shared one
        # now and then, and the owner took the forger's refusal of the same id for its answer.
        owner_config, forger_config = (
            acme_client(secured, secured.tenant_key("acme"), reply_partition=0),
            acme_client(secured, "00" * 32, reply_partition=1),
        )
        async with AsyncClient(owner_config) as owner, AsyncClient(forger_config) as forger:
            stream = owner.stream("Once", sampling=long, request_id=f"mine-{uuid.uuid4().hex}")
            first = await anext(stream)
            rid = first.request_id
            forged = await forger.cancel(rid)
            real = await owner.cancel(rid)
            try:
                async for _ in stream:
                    pass
            except Cancelled as exc:
                return forged.status, forged.code.value if forged.code else None, real.status, exc.code.value
            return forged.status, None, real.status, "finished"

    forged_status, forged_code, real_status, answer = asyncio.run(scenario())
    assert (forged_status, forged_code) == ("refused", "unauthenticated")
    assert real_status == "cancelling" and answer == "cancelled"
