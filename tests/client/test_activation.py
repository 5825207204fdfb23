"""A refusal is retried only for a (server, key) this state folder was activated with."""

from __future__ import annotations

from pathlib import Path

from client.activation import ACTIVATIONS_FILE, record_activation, was_activated


def test_activations_are_remembered_per_server_and_key(tmp_path: Path) -> None:
    assert not was_activated(tmp_path, "srv:9092", "aaaa")
    record_activation(tmp_path, "srv:9092", "aaaa")
    record_activation(tmp_path, "srv:9092", "aaaa")  # once is enough
    assert was_activated(tmp_path, "srv:9092", "aaaa")
    assert not was_activated(tmp_path, "srv:9092", "bbbb")  # another key
    assert not was_activated(tmp_path, "other:9092", "aaaa")  # another server
    assert (tmp_path / ACTIVATIONS_FILE).read_text().count("aaaa") == 1


def test_a_corrupt_record_counts_as_never_activated(tmp_path: Path) -> None:
    (tmp_path / ACTIVATIONS_FILE).write_text("{torn")
    assert not was_activated(tmp_path, "srv:9092", "aaaa")
    record_activation(tmp_path, "srv:9092", "aaaa")
    assert was_activated(tmp_path, "srv:9092", "aaaa")
