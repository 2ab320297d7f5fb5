"""Fair share and priority bands in the worker's waiting queue (``consumers/batching/fair.py``)."""

from __future__ import annotations

import itertools
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from kinfer.consumers.batching.fair import FairOrder
from kinfer.consumers.batching.waiting import WaitingQueue


def queue(**kwargs: float) -> WaitingQueue[str]:
    return WaitingQueue(max_tokens=10_000, max_rows=1000, max_wait_ms=0, **kwargs)  # type: ignore[arg-type]


def one_by_one(q: WaitingQueue[str], n: int) -> list[str]:
    out: list[str] = []
    for _ in range(n):
        q.max_rows = 1
        taken = q.take(0, rows=0, tokens=0)
        if not taken:
            break
        out += taken
    return out


def test_a_heavy_tenants_backlog_does_not_starve_a_light_one() -> None:
    q = queue()
    for i in range(200):
        q.add(f"heavy{i}", tokens=100, deadline_ms=None, now_ms=0, tenant="heavy")
    for i in range(5):
        q.add(f"light{i}", tokens=100, deadline_ms=None, now_ms=1, tenant="light")
    first = one_by_one(q, 10)
    assert sum(name.startswith("light") for name in first) == 5  # alternating, not after 200


def test_shares_are_by_tokens_not_requests() -> None:
    q = queue()
    for i in range(100):
        q.add(f"long{i}", tokens=400, deadline_ms=None, now_ms=0, tenant="long")
        q.add(f"short{i}", tokens=100, deadline_ms=None, now_ms=0, tenant="short")
    taken = one_by_one(q, 50)
    long_tokens = 400 * sum(n.startswith("long") for n in taken)
    short_tokens = 100 * sum(n.startswith("short") for n in taken)
    assert abs(long_tokens - short_tokens) <= 400 + 256  # one request and one quantum apart


def test_weights_set_the_share_within_a_band() -> None:
    q = queue()
    for i in range(300):
        q.add(f"a{i}", tokens=100, deadline_ms=None, now_ms=0, tenant="a", weight=2.0)
        q.add(f"b{i}", tokens=100, deadline_ms=None, now_ms=0, tenant="b", weight=1.0)
    counts = Counter(name[0] for name in one_by_one(q, 150))
    assert 1.8 <= counts["a"] / counts["b"] <= 2.2


def test_a_higher_band_goes_first_but_lower_bands_keep_their_share() -> None:
    q = queue(lower_share=0.1)
    for i in range(500):
        q.add(f"paid{i}", tokens=100, deadline_ms=None, now_ms=0, tenant="paid", band=1)
        q.add(f"free{i}", tokens=100, deadline_ms=None, now_ms=0, tenant="free", band=0)
    taken = one_by_one(q, 200)
    assert taken[0].startswith("paid")
    free = sum(n.startswith("free") for n in taken)
    assert 18 <= free <= 22  # 10 % of the tokens, not 0 and not half
    # The bound: a free request waits at most 9x its tokens of paid joins.
    gaps = [i for i, n in enumerate(taken) if n.startswith("free")]
    assert gaps[0] <= 10 and all(b - a <= 10 for a, b in itertools.pairwise(gaps))


def test_with_no_share_a_lower_band_waits_for_the_higher_one() -> None:
    q = queue(lower_share=0.0)
    q.add("free", tokens=1, deadline_ms=None, now_ms=0, tenant="f", band=0)
    for i in range(5):
        q.add(f"paid{i}", tokens=1, deadline_ms=None, now_ms=0, tenant="p", band=2)
    assert one_by_one(q, 6) == [*(f"paid{i}" for i in range(5)), "free"]


def test_within_a_tenant_earliest_deadline_first() -> None:
    q = queue()
    q.add("late", tokens=1, deadline_ms=None, now_ms=0, tenant="t")
    q.add("soon", tokens=1, deadline_ms=500, now_ms=1, tenant="t")
    assert one_by_one(q, 2) == ["soon", "late"]


def test_an_idle_band_banks_nothing() -> None:
    """A lower band that was empty while the higher one ran does not get a burst afterwards."""
    q = queue()
    for i in range(50):
        q.add(f"paid{i}", tokens=100, deadline_ms=None, now_ms=0, tenant="p", band=1)
    one_by_one(q, 40)
    for i in range(20):
        q.add(f"free{i}", tokens=100, deadline_ms=None, now_ms=0, tenant="f", band=0)
    assert sum(n.startswith("free") for n in one_by_one(q, 10)) <= 1


def test_removal_and_expiry_keep_the_rotation_consistent() -> None:
    q = queue()
    for i in range(4):
        q.add(f"a{i}", tokens=10, deadline_ms=5 if i % 2 else None, now_ms=0, tenant="a")
        q.add(f"b{i}", tokens=10, deadline_ms=None, now_ms=0, tenant="b")
    assert sorted(q.expired(10)) == ["a1", "a3"]
    assert sorted(q.remove(lambda name: name != "b2")) == ["b2"]
    assert sorted(one_by_one(q, 10)) == ["a0", "a2", "b0", "b1", "b3"]


entries = st.lists(
    st.tuples(
        st.sampled_from(["t0", "t1", "t2", "t3"]),
        st.integers(0, 2),
        st.integers(1, 3000),
        st.sampled_from([0.5, 1.0, 3.0]),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(entries, st.floats(0.0, 0.5), st.integers(1, 1024))
def test_every_entry_comes_out_exactly_once(
    items: list[tuple[str, int, int, float]], share: float, quantum: int
) -> None:
    order: FairOrder[_Item] = FairOrder(quantum, share)
    for seq, (tenant, band, tokens, weight) in enumerate(items):
        order.push(_Item(tokens, seq), tenant, band, weight)
    out = []
    while (head := order.peek()) is not None:
        assert order.pop() is head
        out.append(head.seq)
    assert sorted(out) == list(range(len(items)))
    assert len(order) == 0


class _Item:
    def __init__(self, tokens: int, seq: int) -> None:
        self.tokens, self.seq = tokens, seq

    def __lt__(self, other: object) -> bool:
        assert isinstance(other, _Item)
        return self.seq < other.seq
