from __future__ import annotations

from kinfer.schemas import SamplingParams
from kinfer.schemas.cache import cache_key
from tests.unit.schemas.test_messages import request


def test_only_deterministic_requests_are_cacheable() -> None:
    assert cache_key(request(sampling=SamplingParams(temperature=0.0))) is not None
    assert cache_key(request(sampling=SamplingParams(temperature=0.8, seed=7))) is not None
    assert cache_key(request(sampling=SamplingParams(temperature=0.8))) is None


def test_same_question_same_key_whoever_routes_it() -> None:
    a = request(request_id="r1", user="u1", session_id="s1")
    b = request(request_id="r2", user="u2", session_id=None)
    assert cache_key(a) == cache_key(b)


def test_tenants_never_share_an_entry() -> None:
    assert cache_key(request(tenant="acme")) != cache_key(request(tenant="globex"))


def test_every_answer_shaping_field_changes_the_key() -> None:
    base = cache_key(request())
    assert cache_key(request(prompt="ho")) != base
    assert cache_key(request(model="other")) != base
    assert cache_key(request(sampling=SamplingParams(max_tokens=3))) != base
    assert cache_key(request(sampling=SamplingParams(stop=("x",)))) != base
    knobs: list[dict[str, object]] = [
        {"frequency_penalty": 0.5},
        {"presence_penalty": -0.5},
        {"logit_bias": {3: 1.0}},
        {"logit_bias": {3: 2.0}},
        {"n": 2},
        {"logprobs": True},
        {"logprobs": True, "top_logprobs": 2},
    ]
    keys = {cache_key(request(sampling=SamplingParams(**knob))) for knob in knobs}  # type: ignore[arg-type]
    assert len(keys) == len(knobs) and base not in keys
    same = SamplingParams(logit_bias={1: 1.0, 2: 2.0}), SamplingParams(logit_bias={2: 2.0, 1: 1.0})
    assert cache_key(request(sampling=same[0])) == cache_key(request(sampling=same[1]))
    # The seed only matters when sampling: greedy answers are the same whatever it is.
    assert cache_key(request(sampling=SamplingParams(seed=1))) == base
