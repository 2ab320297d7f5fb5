from kinfer.consumers import metrics
from kinfer.consumers.telemetry import DeviceSampler, p99


def test_sampler_reports_tokens_per_second_and_cpu_share() -> None:
    sampler = DeviceSampler("cpu", every_s=0.05)
    sampler.generated(100)
    deadline_spin = 0
    while sampler._pending_tokens and deadline_spin < 10_000_000:  # busy: give the CPU share something
        deadline_spin += 1
        sampler.maybe_sample()
    assert metrics.TOKENS_PER_SECOND._value.get() > 0
    assert 0 < metrics.CPU_UTILISATION._value.get() <= 1.0


def test_p99_is_the_nearest_rank_of_the_intervals_answers() -> None:
    assert p99([]) == 0
    assert p99([float(v) for v in range(1, 101)]) == 99
    assert p99([5.0]) == 5


def test_errors_judged_by_a_drain_are_not_judged_again_after_it() -> None:
    sampler = DeviceSampler("cpu", every_s=0.0)
    for _ in range(4):
        sampler.answered(10.0, server_error=True)
    sampler.maybe_sample()
    assert (sampler.answers, sampler.error_ratio) == (4, 1.0)
    sampler.answered(10.0, server_error=True)  # one more before it left its group
    sampler.forget_errors()
    sampler.answered(10.0, server_error=False)
    sampler.maybe_sample()
    assert (sampler.answers, sampler.error_ratio) == (1, 0.0)
