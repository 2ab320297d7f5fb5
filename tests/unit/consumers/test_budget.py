from consumers.batching.budget import split_by_budget


def test_batches_respect_token_budget_and_keep_order() -> None:
    costs = [100, 200, 300, 400, 50]
    batches = split_by_budget(costs, lambda c: c, max_tokens=500, max_items=10)
    assert batches == [[100, 200], [300], [400, 50]]
    assert all(sum(b) <= 500 for b in batches)


def test_batches_respect_item_limit() -> None:
    assert split_by_budget(list(range(5)), lambda _: 1, max_tokens=100, max_items=2) == [[0, 1], [2, 3], [4]]


def test_item_over_budget_gets_its_own_batch() -> None:
    assert split_by_budget([10, 900, 10], lambda c: c, max_tokens=100, max_items=8) == [[10], [900], [10]]


def test_empty_input_makes_no_batch() -> None:
    assert split_by_budget([], lambda c: c, max_tokens=10, max_items=1) == []
