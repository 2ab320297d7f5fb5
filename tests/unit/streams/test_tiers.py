"""The tier table: parsing, defaults, and reloading a file without losing the last good table."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kinfer.streams.limits.tiers import DEFAULT_TIERS, ReloadingTierTable, TierTable

PRO_ACME = '[tenants.acme]\ntier = "pro"\nresidency = "eu"\n'


def test_unlisted_tenants_are_free_and_listed_ones_get_their_tier_and_residency() -> None:
    table = TierTable.parse(PRO_ACME)
    assert table.policy("someone").tier == DEFAULT_TIERS["free"]
    acme = table.policy("acme")
    assert (acme.tier.name, acme.residency, acme.tier.over_limit) == ("pro", "eu", "queue")


def test_a_file_may_define_its_own_tier() -> None:
    table = TierTable.parse(
        "[tiers.tiny]\nrequests_per_min = 6\nrequest_burst = 1\ntokens_per_min = 60\n"
        'token_burst = 100\nover_limit = "reject"\n[tenants.t]\ntier = "tiny"\n'
    )
    assert table.policy("t").tier.requests_per_min == 6


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[tenants.x]\ntier = "gold"\n', "unknown tier 'gold'"),
        (
            "[tiers.bad]\nrequests_per_min = 0\nrequest_burst = 1\ntokens_per_min = 1\n"
            'token_burst = 1\nover_limit = "reject"\n',
            "requests_per_min must be > 0",
        ),
        (
            "[tiers.bad]\nrequests_per_min = 1\nrequest_burst = 0.5\ntokens_per_min = 1\n"
            'token_burst = 1\nover_limit = "reject"\n',
            "request_burst must be >= 1",
        ),
    ],
)
def test_bad_tables_are_refused_naming_what_is_wrong(text: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        TierTable.parse(text)


def test_a_changed_file_is_reloaded_and_a_broken_one_keeps_the_last_good_table(tmp_path: Path) -> None:
    path = tmp_path / "tiers.toml"
    path.write_text(PRO_ACME)
    reloading = ReloadingTierTable(path)
    assert reloading.policy("acme").tier.name == "pro"
    assert not reloading.reload(), "unchanged file: nothing to do"

    path.write_text('[tenants.acme]\ntier = "enterprise"\n')
    os.utime(path, (1, 1))  # a new modification time, whatever the clock's resolution
    assert reloading.reload() and reloading.policy("acme").tier.name == "enterprise"

    path.write_text("this is not toml ===")
    os.utime(path, (2, 2))
    assert not reloading.reload()
    assert reloading.policy("acme").tier.name == "enterprise"


def test_a_broken_file_at_start_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "tiers.toml"
    path.write_text('[tenants.x]\ntier = "gold"\n')
    with pytest.raises(ValueError, match="unknown tier"):
        ReloadingTierTable(path)


def test_no_file_means_built_in_tiers() -> None:
    assert ReloadingTierTable(None).policy("anyone").tier.name == "free"
