"""What a training instruction carries: the keys a client trains with and a run key,
never the server's paths or options it has no use for."""

from __future__ import annotations

from common.config import RunConfig
from common.messages import CLIENT_KEYS, ROUND_KEY, RUN_KEY, read_training_config, training_config


def test_the_instruction_holds_the_client_keys_only() -> None:
    cfg = RunConfig(out_dir="/srv/secret-project/run-1", dataset="digits", num_clients=4)
    flat = training_config(cfg)
    assert set(flat) == {*CLIENT_KEYS, RUN_KEY}
    for server_only in ("out-dir", "max-failed-rounds", "secagg-timeout", "dp-noise-multiplier"):
        assert server_only not in flat
    assert not any("secret-project" in str(v) for v in flat.values())


def test_the_client_reads_back_what_it_trains_with() -> None:
    cfg = RunConfig(
        dataset="digits", method="byol", local_epochs=3, learning_rate=1e-4, max_weight=50.0,
        dp_clipping_norm=1.0, out_dir="/a",
    )  # fmt: skip
    got, server_round, key = read_training_config({**training_config(cfg), ROUND_KEY: 7})
    assert server_round == 7 and key == training_config(cfg)[RUN_KEY]
    for k in CLIENT_KEYS:
        assert got.to_flat()[k] == cfg.to_flat()[k], k


def test_the_run_key_is_stable_per_run_and_differs_between_runs() -> None:
    a, b = RunConfig(out_dir="/runs/a"), RunConfig(out_dir="/runs/b")
    assert training_config(a)[RUN_KEY] == training_config(a.replace(num_server_rounds=30))[RUN_KEY]
    assert training_config(a)[RUN_KEY] != training_config(b)[RUN_KEY]
