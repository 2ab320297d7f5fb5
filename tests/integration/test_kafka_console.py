"""Kafka without the Python SDK: a request written by Kafka's own console producer, its answer
read by the console consumer from the reply partition, following only the docs' "From any
language" section and the JSON Schemas (what a team with producers in Java, Go or a shell
script has to go by)."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import redis

from kinfer.producers.reply_lease import ReplyLease
from tests.conftest import JARS, Services
from tests.integration.conftest import Pipeline, serving

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas" / "jsonschema"
REPLY_PARTITION = 2


def schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / f"{name}.json").read_text())
    return loaded


def kafka_tool(main_class: str, *args: str, stdin: str | None = None) -> str:
    """One of Kafka's command-line tools, run from the jars `make setup` resolved."""
    proc = subprocess.run(
        ["java", "-cp", f"{JARS}/*", main_class, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def console_line(request: dict[str, Any], prefix: str) -> str:
    """``parse.headers`` and ``parse.key`` input: headers, tab, key (the tenant), tab, value."""
    headers = {
        "kinfer-request-id": request["request_id"],
        "kinfer-tenant": request["tenant"],
        "kinfer-reply-topic": f"{prefix}.replies",
        "kinfer-reply-partition": str(REPLY_PARTITION),
    }
    header_text = ",".join(f"{k}:{v}" for k, v in headers.items())
    return f"{header_text}\t{request['tenant']}\t{json.dumps(request, separators=(',', ':'))}\n"


def test_the_console_producer_asks_and_the_console_consumer_reads_the_answer(
    make_pipeline: Callable[[str], Pipeline], prefix: str, services: Services
) -> None:
    # The console consumer reads its partition from the start: lease it as an SDK client would,
    # so no SDK client (the readiness probes, whose late answers once landed here) shares it.
    lease = redis.Redis.from_url(services.redis_url)
    lease.set(ReplyLease(lease, prefix).key(REPLY_PARTITION), "console-test", px=600_000)
    serving(make_pipeline, prefix)
    reply_to = {"topic": f"{prefix}.replies", "partition": REPLY_PARTITION}
    good = {
        "request_id": f"console-{uuid.uuid4().hex[:8]}",
        "tenant": "default",
        "prompt": "Hello from a shell script",
        "reply_to": reply_to,
        "sampling": {"max_tokens": 8, "logprobs": True, "top_logprobs": 2},
        "schema_version": 6,
    }
    typo = {**good, "request_id": f"console-{uuid.uuid4().hex[:8]}", "sampling": {"max_token": 8}}
    jsonschema.validate(good, schema("inference_request"))

    kafka_tool(
        "org.apache.kafka.tools.ConsoleProducer",
        "--bootstrap-server",
        services.bootstrap,
        "--topic",
        f"{prefix}.requests",
        "--property",
        "parse.key=true",
        "--property",
        "parse.headers=true",
        stdin=console_line(good, prefix) + console_line(typo, prefix),
    )
    out = kafka_tool(
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        "--bootstrap-server",
        services.bootstrap,
        "--topic",
        f"{prefix}.replies",
        "--partition",
        str(REPLY_PARTITION),
        "--offset",
        "earliest",
        "--isolation-level",
        "read_committed",
        "--max-messages",
        "2",
        "--timeout-ms",
        "90000",
    )
    replies = {r["request_id"]: r for r in map(json.loads, out.strip().splitlines())}
    assert replies.keys() == {good["request_id"], typo["request_id"]}, out
    answer, refusal = replies[good["request_id"]], replies[typo["request_id"]]

    jsonschema.validate(answer, schema("inference_result"))
    assert answer["type"] == "result" and answer["text"] and answer["model"] == "kinfer-tiny"
    assert len(answer["logprobs"]) == answer["usage"]["completion_tokens"]
    assert all(len(token["top"]) == 2 for token in answer["logprobs"])
    jsonschema.validate(refusal, schema("error_reply"))
    assert refusal["type"] == "error" and refusal["code"] == "invalid_request"
    assert "sampling.max_token" in refusal["message"]
