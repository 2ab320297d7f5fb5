from kinfer.consumers.pool.policy import Member, PoolConfig, decide

CFG = PoolConfig(lag_threshold=100, idle_release_ms=300_000, min_active=1, promote_cooldown_ms=10_000)
NOW = 1_000_000


def m(worker_id: str, state: str, busy_ago_ms: int = 0, seen_ago_ms: int = 0) -> Member:
    return Member(worker_id, state, NOW - seen_ago_ms, NOW - busy_ago_ms)  # type: ignore[arg-type]


def test_lag_over_threshold_promotes_one_standby() -> None:
    actions = decide([m("a", "active"), m("s2", "standby"), m("s1", "standby")], 150, NOW, 0, CFG)
    assert [(a.kind, a.worker_id) for a in actions] == [("promote", "s1")]


def test_no_active_worker_promotes_on_any_lag_but_not_without_work() -> None:
    assert decide([m("s1", "standby")], 1, NOW, 0, CFG)[0].kind == "promote"
    assert decide([m("s1", "standby")], 0, NOW, 0, CFG) == []


def test_promotions_wait_for_the_cooldown() -> None:
    assert decide([m("a", "active"), m("s1", "standby")], 500, NOW, NOW - 5_000, CFG) == []


def test_idle_workers_are_released_but_not_below_min_active() -> None:
    members = [m("a", "active", busy_ago_ms=400_000), m("b", "active", busy_ago_ms=350_000), m("c", "active")]
    actions = decide(members, 0, NOW, 0, CFG)
    assert [(a.kind, a.worker_id) for a in actions] == [("release", "a"), ("release", "b")]
    only_idle = [m("a", "active", busy_ago_ms=400_000)]
    assert decide(only_idle, 0, NOW, 0, CFG) == []


def test_silent_members_are_ignored() -> None:
    assert decide([m("a", "active"), m("s1", "standby", seen_ago_ms=60_000)], 500, NOW, 0, CFG) == []


def test_queue_delay_promotes_even_without_lag() -> None:
    slow = Member("a", "active", NOW, NOW, queue_ms=2_500)
    actions = decide([slow, m("s1", "standby")], 0, NOW, 0, CFG)
    assert [(a.kind, a.worker_id) for a in actions] == [("promote", "s1")]
    assert "queue delay 2500 ms" in actions[0].reason
    quick = Member("a", "active", NOW, NOW, queue_ms=100)
    assert decide([quick, m("s1", "standby")], 0, NOW, 0, CFG) == []


def test_p99_latency_over_a_second_promotes_a_warm_worker_and_holds_back_releases() -> None:
    slow = Member("a", "active", NOW, NOW - 400_000, p99_ms=1_300)
    (action,) = decide([slow, m("s1", "standby")], 0, NOW, 0, CFG)
    assert (action.kind, action.worker_id, action.reason) == (
        "promote",
        "s1",
        "p99 latency 1300 ms >= 1000 ms",
    )
    assert decide([slow, m("b", "active", busy_ago_ms=400_000)], 0, NOW, 0, CFG) == []  # no release either
    fast = Member("a", "active", NOW, NOW, p99_ms=900)
    assert decide([fast, m("s1", "standby")], 0, NOW, 0, CFG) == []
