"""Ports for tests: below the ephemeral range, each free when picked, and disjoint slices for
processes that pick side by side."""

from __future__ import annotations

import socket

import pytest

from kinfer.infra.stack.process import PortPicker, port_is_free

LOW = range(15000, 15100)
"""Below the slices the suite's processes pick from (and the ephemeral range), so free here."""


def test_ports_come_in_turn_from_the_range() -> None:
    picker = PortPicker(LOW)
    picked = [picker.block(1) for _ in range(len(LOW))]
    assert sorted(picked) == list(LOW)  # each once before any again


def test_a_port_in_use_is_skipped() -> None:
    # Two ports of LOW, not bind(0)'s: the port after an ephemeral one may be any outgoing
    # connection's (an official CI run found it taken).
    port = next(p for p in LOW if port_is_free(p) and port_is_free(p + 1))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        picker = PortPicker(range(port, port + 2))
        assert {picker.block(1) for _ in range(4)} == {port + 1}


def test_a_block_is_consecutive_and_free() -> None:
    picker = PortPicker(LOW)
    base = picker.block(10)
    assert LOW.start <= base and base + 10 <= LOW.stop
    assert all(port_is_free(p) for p in range(base, base + 10))


def test_a_block_that_cannot_be_found_fails() -> None:
    with pytest.raises(RuntimeError, match="no 5 consecutive free ports"):
        PortPicker(range(15000, 15003)).block(5)


def test_slices_are_disjoint() -> None:
    slices = []
    for index in range(3):
        picker = PortPicker(range(21000, 33000))
        picker.narrow(index, 3)
        slices.append(set(picker.ports))
        assert all(picker.block(1) in picker.ports for _ in range(5))
    assert not slices[0] & slices[1] and not slices[1] & slices[2] and len(slices[0]) == 4000
