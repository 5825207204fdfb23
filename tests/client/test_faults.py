"""Fault-drill specs parse strictly and select the right client, stage and round."""

from __future__ import annotations

import pytest

from client.mods.faults import parse_faults, should_fail


def test_parse_and_match(monkeypatch: pytest.MonkeyPatch) -> None:
    faults = parse_faults("share_keys@0,1;train@2#3")
    assert faults[0].stage == "share_keys" and faults[0].partitions == {0, 1}
    assert faults[0].round is None and faults[1].round == 3
    monkeypatch.setenv("FEDSSL_FAULTS", "share_keys@0,1;train@2#3")
    assert should_fail("share_keys", 1, 7)
    assert not should_fail("share_keys", 2, 7)
    assert should_fail("train", 2, 3) and not should_fail("train", 2, 4)
    monkeypatch.delenv("FEDSSL_FAULTS")
    assert not should_fail("share_keys", 0, 1)


@pytest.mark.parametrize("spec", ["share_keys", "@1", "train@x"])
def test_bad_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_faults(spec)
