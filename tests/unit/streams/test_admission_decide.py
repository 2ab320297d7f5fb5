from kinfer.schemas import ErrorCode, InferenceRequest, ReplyAddress, SamplingParams, encode, headers
from kinfer.schemas.refusals import Refused
from kinfer.streams.admission import AdmissionLimits, Admit, decide

ADDR = ReplyAddress("t.replies", 1)
LIMITS = AdmissionLimits(max_prompt_bytes=1000, max_new_tokens=100)


def req(**kw: object) -> InferenceRequest:
    fields: dict[str, object] = {"request_id": "r", "tenant": "t", "prompt": "hi", "reply_to": ADDR}
    fields.update(kw)
    return InferenceRequest(**fields)  # type: ignore[arg-type]


def run(value: bytes, hdrs: dict[str, str] | None = None, now: int = 0) -> Admit | Refused:
    return decide(value, hdrs or {}, now_ms=now, limits=LIMITS)


def test_valid_request_is_admitted() -> None:
    out = run(encode(req()))
    assert isinstance(out, Admit) and out.request == req()


def test_deployment_limits_are_invalid_request_and_dead_lettered() -> None:
    for bad in (req(prompt="x" * 1001), req(sampling=SamplingParams(max_tokens=101))):
        out = run(encode(bad))
        assert isinstance(out, Refused)
        assert out.reply.code is ErrorCode.INVALID_REQUEST and out.dead_letter_reason
        assert out.address == ADDR


def test_expired_deadline_is_refused_but_not_dead_lettered() -> None:
    out = run(encode(req(deadline_ms=5)), now=10)
    assert isinstance(out, Refused) and out.reply.code is ErrorCode.DEADLINE_EXCEEDED
    assert out.dead_letter_reason is None


def test_malformed_record_uses_header_address() -> None:
    hdrs = {headers.REQUEST_ID: "x1", headers.REPLY_TOPIC: "t.replies", headers.REPLY_PARTITION: "1"}
    out = run(b'{"prompt": 3}', hdrs)
    assert isinstance(out, Refused) and out.address == ADDR and out.reply.request_id == "x1"
