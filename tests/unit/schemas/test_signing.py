"""Request signatures: valid only for the one request, under a live key of its tenant."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kinfer.schemas.signing import SignatureRefused, sign, verified_key

KEY, OTHER = "a" * 64, "b" * 64


def verify(keys: list[str], signature: str | None, *request: object) -> str | None:
    """None when ``signature`` verifies; else why not."""
    try:
        verified_key(keys, signature, *request)  # type: ignore[arg-type]
    except SignatureRefused as exc:
        return str(exc)
    return None


REQUEST = ("r1", "acme", 1_000, b'{"prompt": "hi"}')


def test_a_signature_verifies_under_its_key_and_either_live_key_of_a_rotation() -> None:
    signature = sign(KEY, *REQUEST)
    assert signature.startswith("v1=")
    assert verify([KEY], signature, *REQUEST) is None
    assert (
        verified_key([OTHER, KEY], signature, *REQUEST) == KEY
    )  # current + previous: the one it was signed with
    assert (
        verify([OTHER], signature, *REQUEST)
        == "the signature does not match the request under the tenant's keys"
    )


def test_unsigned_unknown_scheme_and_keyless_tenants_say_why() -> None:
    assert verify([KEY], None, *REQUEST) == "the request is not signed (kinfer-signature header missing)"
    assert "unknown signature scheme" in (verify([KEY], "v9=00", *REQUEST) or "")
    assert verify([], sign(KEY, *REQUEST), *REQUEST) == "tenant 'acme' has no signing key"
    assert verify([""], sign(KEY, *REQUEST), *REQUEST) == "tenant 'acme' has no signing key"


@given(
    field=st.sampled_from(["request_id", "tenant", "deadline_ms", "value"]),
    change=st.text(min_size=1, max_size=20),
)
def test_changing_any_signed_part_breaks_the_signature(field: str, change: str) -> None:
    parts = dict(zip(["request_id", "tenant", "deadline_ms", "value"], REQUEST, strict=True))
    signature = sign(KEY, *REQUEST)
    if field == "deadline_ms":
        parts[field] = REQUEST[2] + 1 + len(change)
    elif field == "value":
        parts[field] = REQUEST[3] + change.encode()
    else:
        parts[field] = str(parts[field]) + change
    assert verify([KEY], signature, *parts.values()) is not None  # type: ignore[arg-type]


def test_a_missing_deadline_is_signed_too() -> None:
    signature = sign(KEY, "r1", "acme", None, b"x")
    assert verify([KEY], signature, "r1", "acme", None, b"x") is None
    assert verify([KEY], signature, "r1", "acme", 0, b"x") is not None
