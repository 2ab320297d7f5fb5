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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from pydantic import SecretStr

from kinfer.infra.stack.process import free_port
from kinfer.infra.stack.redis import local_url
from kinfer.infra.stack.secure import SecureFiles
from kinfer.producers import AsyncClient, Cancelled, ClientConfig, DeadlineExceeded
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
from kinfer.schemas.request_keys import answered_key, decided_key, request_key
from kinfer.schemas.signing import REPLY_SIGNATURE, SIGNATURE, reply_key, reply_signed, sign
from tests.integration.conftest import JARS, kinfer

NAMES = TopicNames()
MAX_AGE_S = 15


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

    def redis_admin(self) -> redis.Redis:
        password = self.files.credentials().roles["admin"].get_secret_value()
        url = local_url(int(self.env["KINFER_REDIS_PORT"]), "kinfer-admin", password, self.files.ca_file)
        return redis.Redis.from_url(url, socket_timeout=5)


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
        # A signed request is good for 15 s here (1800 by default), so a replay past that age
        # can be tried in a test.
        "KINFER_ADMISSION__SIGNED_MAX_AGE_S": str(MAX_AGE_S),
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
    counted = [records_in(admin, topic) for topic in wanted]
    for topic, (records, _) in zip(wanted, counted, strict=True):
        assert records > 0, f"nothing in {topic}: the check below would prove nothing"
    with ThreadPoolExecutor(len(wanted)) as pool:  # each attempt reads for 8 s: at once, not in turn
        attempts = list(pool.map(read_attempt, [acme] * len(wanted), wanted, [p for _, p in counted]))
    for topic, (read, error) in zip(wanted, attempts, strict=True):
        # Kafka does not even say the topic exists to a user who may not describe it.
        hidden = error is not None and error.code() in (
            KafkaError._UNKNOWN_PARTITION,
            KafkaError._UNKNOWN_TOPIC,
        )
        assert read == 0 and (hidden or authorization_failed(error)), (topic, read, error)


def signed_request(
    tenant: str, reply_to: ReplyAddress, key: str | None, rid: str = "", created_ms: int | None = None
) -> tuple[InferenceRequest, bytes, list[tuple[str, str | bytes]]]:
    """A request as a plain Kafka producer writes it: its value, and its headers signed with
    ``key`` (None: unsigned)."""
    request = InferenceRequest(
        request_id=rid or uuid.uuid4().hex,
        tenant=tenant,
        prompt="spend their quota",
        reply_to=reply_to,
        sampling=SamplingParams(max_tokens=4),
        created_ms=int(time.time() * 1000) if created_ms is None else created_ms,
    )
    value = encode(request)
    hdrs: list[tuple[str, str | bytes]] = list(request_headers(request))
    if key is not None:
        hdrs.append((SIGNATURE, sign(key, request.request_id, tenant, None, value)))
    return request, value, hdrs


def produce_all(
    kafka: KafkaConnection, records: list[tuple[str, bytes, list[tuple[str, str | bytes]]]]
) -> None:
    producer = Producer(client_config(kafka))
    for tenant, value, hdrs in records:
        producer.produce(NAMES.requests, key=tenant.encode(), value=value, headers=hdrs)
    assert producer.flush(30) == 0


def dead_letters(secured: SecuredStack, ids: set[str], timeout_s: float = 60) -> dict[str, list[str]]:
    """The reasons the DLQ holds for ``ids`` (read as the admin: tenants may not), once each
    id has one or the time is up."""
    admin = Consumer(client_config(secured.admin(), {"group.id": f"audit-{uuid.uuid4().hex}"}))
    admin.assign([TopicPartition(NAMES.requests_dlq, 0, 0)])
    reasons: dict[str, list[str]] = {}
    deadline = time.monotonic() + timeout_s
    while not ids <= set(reasons) and time.monotonic() < deadline:
        msg = admin.poll(1.0)
        if msg is not None and msg.error() is None:
            try:
                letter = decode_dead_letter(msg.value())
            except InvalidMessage:
                continue  # the audit record an earlier test wrote
            if letter.request_id in ids:
                reasons.setdefault(letter.request_id, []).append(letter.reason)
    admin.close()
    return reasons


def answers_in(
    kafka: KafkaConnection, topic: str
) -> list[tuple[int, ErrorReply | InferenceResult, str | None]]:
    """Every answer on every partition of ``topic`` up to its end: (partition, answer, signature)."""
    consumer = Consumer(client_config(kafka, {"group.id": f"kinfer-reply-{uuid.uuid4().hex}"}))
    partitions = len(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    ends = {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)
    }
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions) if ends[p] > 0])
    found: list[tuple[int, ErrorReply | InferenceResult, str | None]] = []

    def at_end() -> bool:  # by position: a transaction's commit marker is past the last record
        positions = consumer.position([TopicPartition(topic, p) for p in range(partitions)])
        return all(tp.offset >= ends[tp.partition] for tp in positions if ends[tp.partition] > 0)

    deadline = time.monotonic() + 30
    while not (finished := at_end()) and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None or msg.error() is not None:
            continue
        try:
            reply = decode_reply(msg.value())
        except InvalidMessage:
            continue  # not an answer (a forged record an earlier test wrote as the admin)
        if isinstance(reply, (ErrorReply, InferenceResult)):
            signature = dict(msg.headers() or []).get(REPLY_SIGNATURE)
            found.append((msg.partition(), reply, signature.decode() if signature else None))
    consumer.close()
    assert finished, f"{topic} not read to its end"
    return found


def test_an_unproven_request_is_dead_lettered_and_answered_nowhere(secured: SecuredStack) -> None:
    """No record reaches a reply topic for a request that did not prove its tenant: a forger who
    knew a pending request id could otherwise fail that call, for free. A tenant's own signed
    request naming another's topic is refused on its own topic, signed."""
    acme_key = secured.tenant_key("acme")
    victims = ReplyAddress(NAMES.tenant_replies("default"), 0)
    cases = {
        # tenant "default" claimed, signed with acme's key, answers asked to acme's topic
        "impostor": signed_request("default", ReplyAddress(NAMES.tenant_replies("acme"), 0), acme_key),
        # acme itself, but no signature / a key that is not acme's
        "unsigned": signed_request("acme", ReplyAddress(NAMES.tenant_replies("acme"), 0), None),
        "wrong-key": signed_request("acme", ReplyAddress(NAMES.tenant_replies("acme"), 0), "00" * 32),
        # the victim's topic named: claiming the victim, unsigned (a forged refusal of its call)
        "victims-id": signed_request("default", victims, None),
    }
    # acme's own signed request naming the victim's topic: refused on acme's topic (partition 0).
    misaddressed, value, hdrs = signed_request("acme", victims, acme_key)
    produce_all(
        secured.tenant("acme"), [(r.tenant, v, h) for r, v, h in cases.values()] + [("acme", value, hdrs)]
    )

    unproven = {request.request_id: case for case, (request, _, _) in cases.items()}
    reasons = dead_letters(secured, {*unproven, misaddressed.request_id})
    assert set(reasons) == {*unproven, misaddressed.request_id}, (
        f"no dead letter for {set(unproven) - set(reasons)}"
    )
    for rid, case in unproven.items():
        assert any("not proven" in r for r in reasons[rid]), (case, reasons[rid])
    assert any("not signed" in r for r in reasons[cases["unsigned"][0].request_id])

    admin = secured.admin()
    for topic in (NAMES.tenant_replies("default"), NAMES.tenant_replies("acme")):
        ids = {reply.request_id for _, reply, _ in answers_in(admin, topic)}
        assert not ids & set(unproven), f"{topic} holds an answer to an unproven request"
    assert misaddressed.request_id not in {r.request_id for _, r, _ in answers_in(admin, victims.topic)}
    deadline = time.monotonic() + 30
    while not (
        own := [
            a
            for a in answers_in(admin, NAMES.tenant_replies("acme"))
            if a[1].request_id == misaddressed.request_id
        ]
    ):
        assert time.monotonic() < deadline, "acme's misaddressed request was not refused on acme's topic"
    ((partition, refusal, signature),) = own
    assert partition == 0 and isinstance(refusal, ErrorReply) and refusal.code == "invalid_request"
    assert signature is not None and reply_signed(
        reply_key(acme_key, misaddressed.request_id), encode(refusal), signature
    )


def test_a_signed_request_replayed_after_its_window_is_refused_and_answered_once(
    secured: SecuredStack,
) -> None:
    """A genuine signed request captured byte for byte: replayed while its idempotency marks
    stand, it is dropped as a duplicate; replayed once they are gone (here deleted, as a Redis
    loss or the hour's end would) it is older than a signed request is good for, and refused."""
    reply_to = ReplyAddress(NAMES.tenant_replies("acme"), 3)  # of 4: no other test reads it
    sent_ms = int(time.time() * 1000)
    request, value, hdrs = signed_request(
        "acme", reply_to, secured.tenant_key("acme"), created_ms=sent_ms - 5_000
    )
    acme = secured.tenant("acme")
    produce_all(acme, [("acme", value, hdrs)])

    def answers() -> list[ErrorReply | InferenceResult]:
        return [r for _, r, _ in answers_in(acme, reply_to.topic) if r.request_id == request.request_id]

    deadline = time.monotonic() + 60
    while not answers():
        assert time.monotonic() < deadline, "the genuine request was not answered"
    assert isinstance(answers()[0], InferenceResult)
    produce_all(acme, [("acme", value, hdrs)])  # marks standing: a duplicate, dropped

    store = secured.redis_admin()
    key = request_key("acme", request.request_id)
    assert store.delete(decided_key(NAMES.prefix, key), answered_key(NAMES.prefix, key)) >= 1
    while time.time() * 1000 - request.created_ms <= MAX_AGE_S * 1000:  # its age past the window
        time.sleep(0.2)
    produce_all(acme, [("acme", value, hdrs)])
    (reason,) = dead_letters(secured, {request.request_id})[request.request_id]
    assert "older than the 15 s a signed request is good for" in reason
    assert len(answers()) == 1, answers()


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


def acme_client(
    secured: SecuredStack, key: str, reply_partition: int | None = None, timeout_s: float = 30
) -> ClientConfig:
    return ClientConfig(
        kafka=secured.tenant("acme"),
        tenant="acme",
        private_replies=True,
        signing_keys={"acme": SecretStr(key)},
        verify_replies=True,
        timeout_s=timeout_s,
        reply_partition=reply_partition,
    )


def answered_with(secured: SecuredStack, key: str) -> bool:
    """Whether a request signed with ``key`` is answered; False when it is not and the DLQ says
    admission refused it as unproven (the refusal is withheld: the client sees its deadline)."""
    rid = f"probe-{uuid.uuid4().hex}"

    async def ask() -> bool:
        async with AsyncClient(acme_client(secured, key, timeout_s=8)) as client:
            try:
                await client.generate("hello", sampling=SamplingParams(max_tokens=2), request_id=rid)
            except DeadlineExceeded:
                return False
            return True

    if asyncio.run(ask()):
        return True
    reasons = dead_letters(secured, {rid}).get(rid, [])
    assert any("not proven" in r for r in reasons), f"{rid} neither answered nor refused: {reasons}"
    return False


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
    """A cancel is proven like a request: one signed with another key stops nothing and is
    acknowledged nowhere (a dead letter; the forger sees its deadline); the tenant's own stops it."""
    long = SamplingParams(max_tokens=900, logit_bias={257: -100})  # kinfer-tiny, end of text banned

    async def scenario() -> tuple[str, str, str]:
        # Partitions of their own, so neither client can see the other's acknowledgements.
        owner_config, forger_config = (
            acme_client(secured, secured.tenant_key("acme"), reply_partition=0),
            acme_client(secured, "00" * 32, reply_partition=1),
        )
        async with AsyncClient(owner_config) as owner, AsyncClient(forger_config) as forger:
            stream = owner.stream("Once", sampling=long, request_id=f"mine-{uuid.uuid4().hex}")
            first = await anext(stream)
            rid = first.request_id
            forged = asyncio.create_task(forger.cancel(rid, timeout_s=5))
            real = await owner.cancel(rid)
            try:
                async for _ in stream:
                    pass
                answer = "finished"
            except Cancelled as exc:
                answer = exc.code.value
            try:
                await forged
                forged_outcome = "acknowledged"
            except DeadlineExceeded:
                forged_outcome = "no acknowledgement"
            return rid, forged_outcome, f"{real.status}/{answer}"

    rid, forged, real = asyncio.run(scenario())
    assert (forged, real) == ("no acknowledgement", "cancelling/cancelled")
    assert any("not proven" in r for r in dead_letters(secured, {rid})[rid])


def test_a_tenant_can_count_the_ingress_but_read_none_of_it(secured: SecuredStack) -> None:
    """The exposure the threat model states (README): to produce, a tenant must be allowed to
    describe the ingress topic, so it sees every partition's watermarks (how many requests, and
    when, by partition, near enough by tenant); it reads no record of it."""
    acme, admin = secured.tenant("acme"), secured.admin()
    assert kinfer("submit", "counted by others", env=secured.env).returncode == 0  # tenant default
    records, partitions = records_in(admin, NAMES.requests)
    assert records > 0
    consumer = Consumer(client_config(acme, {"group.id": f"kinfer-reply-{uuid.uuid4().hex}"}))
    try:
        seen = sum(
            high - low
            for low, high in (
                consumer.get_watermark_offsets(TopicPartition(NAMES.requests, p), timeout=10)
                for p in range(partitions)
            )
        )
    finally:
        consumer.close()
    assert seen >= records  # every tenant's traffic, counted by acme
    reader = Consumer(client_config(acme, {"group.id": f"kinfer-reply-{uuid.uuid4().hex}"}))
    reader.assign([TopicPartition(NAMES.requests, p, 0) for p in range(partitions)])
    read, refused = 0, None
    deadline = time.monotonic() + 30
    try:
        while refused is None and time.monotonic() < deadline:
            msg = reader.poll(0.5)
            if msg is not None and msg.error() is None:
                read += 1
            elif msg is not None:
                refused = msg.error()
    finally:
        reader.close()
    assert read == 0 and authorization_failed(refused), (read, refused)
