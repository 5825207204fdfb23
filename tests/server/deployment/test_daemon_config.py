"""``fedssl server`` refuses bad input before any process starts: missing or exposed
certificates, a finished run, a resumed run whose config changed."""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

import pytest

from common.cli import main
from common.config import ConfigError, RunConfig
from common.errors import EXIT_BAD_INPUT
from common.keyfiles import KeyFileError
from server.deployment.certs import make_certs
from server.deployment.daemon import (
    _check_certs,
    _prepare_out,
    _resolve_keys,
    add_arguments,
    build_config,
)
from server.deployment.records import write_record


@pytest.fixture(autouse=True)
def _quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLWR_TELEMETRY_ENABLED", "0")
    monkeypatch.setenv("FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION", "1")
    # daemon.run calls setup_logging, which would detach the "fedssl" logger from caplog
    # for every later test; keep it attached.
    monkeypatch.setattr("common.logs.setup_logging", lambda *a, **k: None)
    monkeypatch.setattr(logging.getLogger("fedssl"), "propagate", True)


def _args(tmp_path: Path, *argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(["--state-dir", str(tmp_path / "state"), *argv])


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certs(
        tmp_path_factory.mktemp("c") / "certs", ["localhost", "127.0.0.1"], ["a", "b", "c"]
    )


def _main(tmp_path: Path, *argv: str) -> int:
    """``fedssl server ...`` through the CLI: its exit code (errors printed to stderr)."""
    return main(["server", "--state-dir", str(tmp_path / "state"), *argv])


def _run_args(tmp_path: Path, out: Path, *extra: str) -> argparse.Namespace:
    return _args(tmp_path, "--insecure", "--dataset", "digits", "--out", str(out), *extra)


def _save_config(cfg: RunConfig, clients: int = 3) -> None:
    """config.json as server/run.py writes it (max-weight resolved, resume off)."""
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    flat = {**cfg.replace(resume=False, max_weight=4096.0).to_flat(), "resolved-clients": clients}
    (out / "config.json").write_text(json.dumps(flat, indent=2))


# ---- certificates ---------------------------------------------------------------------


def test_certs_are_required_without_insecure(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--certs"):
        _check_certs(_args(tmp_path))


def test_insecure_needs_no_certs_and_says_so_loudly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="fedssl.server"):
        assert _check_certs(_args(tmp_path, "--insecure", "--port", "9123")) is None
    text = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "--insecure" in text and "9123" in text


def test_good_certs_folder_is_accepted(tmp_path: Path, certs: Path) -> None:
    assert _check_certs(_args(tmp_path, "--certs", str(certs))) == certs.resolve()


@pytest.mark.parametrize("name", ["server.key", "app-signing.key"])
def test_readable_private_key_is_refused(tmp_path: Path, name: str) -> None:
    root = make_certs(tmp_path / "certs", ["localhost"])
    os.chmod(root / name, 0o644)
    with pytest.raises(KeyFileError, match=name):
        _check_certs(_args(tmp_path, "--certs", str(root)))


def test_missing_server_key_is_refused(tmp_path: Path) -> None:
    root = make_certs(tmp_path / "certs", ["localhost"])
    (root / "server.key").unlink()
    with pytest.raises(KeyFileError, match="server.key"):
        _check_certs(_args(tmp_path, "--certs", str(root)))


def test_certificate_without_the_listening_address_is_refused_at_once(tmp_path: Path) -> None:
    """`fedssl certs --host localhost`, then `fedssl server --host 127.0.0.1`: devices
    connecting to 127.0.0.1 would fail their TLS check, so the daemon does not start."""
    root = make_certs(tmp_path / "certs", ["localhost"])
    with pytest.raises(ConfigError, match="127.0.0.1.*--host 127.0.0.1"):
        _check_certs(_args(tmp_path, "--certs", str(root), "--host", "127.0.0.1"))
    assert _check_certs(_args(tmp_path, "--certs", str(root), "--host", "localhost"))


def test_wildcard_host_checks_the_public_address(tmp_path: Path) -> None:
    root = make_certs(tmp_path / "certs", ["fl.example.org", "10.0.0.5"])
    ok = ["--certs", str(root), "--host", "0.0.0.0"]
    assert _check_certs(_args(tmp_path, *ok))  # nothing to compare with
    assert _check_certs(_args(tmp_path, *ok, "--public-address", "FL.example.org"))
    assert _check_certs(_args(tmp_path, *ok, "--public-address", "10.0.0.5"))
    with pytest.raises(ConfigError, match="10.0.0.6"):
        _check_certs(_args(tmp_path, *ok, "--public-address", "10.0.0.6"))


def test_certificate_of_another_ca_or_key_is_refused(tmp_path: Path) -> None:
    root = make_certs(tmp_path / "certs", ["localhost", "127.0.0.1"])
    other = make_certs(tmp_path / "other", ["localhost", "127.0.0.1"])
    good_key = (root / "server.key").read_bytes()
    (root / "server.key").unlink()
    (root / "server.key").write_bytes((other / "server.key").read_bytes())
    os.chmod(root / "server.key", 0o600)
    with pytest.raises(ConfigError, match="is not the key of"):
        _check_certs(_args(tmp_path, "--certs", str(root)))
    (root / "server.key").write_bytes(good_key)
    (root / "server.crt").write_bytes((other / "server.crt").read_bytes())
    with pytest.raises(ConfigError, match="not issued by"):
        _check_certs(_args(tmp_path, "--certs", str(root)))


def test_expired_certificate_is_refused(tmp_path: Path) -> None:
    root = make_certs(tmp_path / "certs", ["localhost", "127.0.0.1"], days=0)
    with pytest.raises(ConfigError, match="not now"):
        _check_certs(_args(tmp_path, "--certs", str(root)))


@pytest.mark.parametrize("name", ["ca.crt", "server.crt", "app-signing.crt"])
def test_missing_certificate_is_named(tmp_path: Path, name: str) -> None:
    root = make_certs(tmp_path / "certs", ["localhost"])
    (root / name).unlink()
    with pytest.raises(ConfigError, match=name):
        _check_certs(_args(tmp_path, "--certs", str(root)))


def test_certs_folder_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ca.crt"):
        _check_certs(_args(tmp_path, "--certs", str(tmp_path / "nowhere")))


def test_run_reports_bad_input_without_starting_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def never(*_a: object, **_k: object) -> int:
        raise AssertionError("serve must not be reached")

    monkeypatch.setattr("server.deployment.serve.serve", never)
    root = make_certs(tmp_path / "certs", ["localhost"], ["a", "b", "c"])
    os.chmod(root / "server.key", 0o640)
    assert _main(tmp_path, "--certs", str(root), "--dataset", "digits") == EXIT_BAD_INPUT
    assert "server.key" in capsys.readouterr().err
    assert _main(tmp_path, "--dataset", "digits") == EXIT_BAD_INPUT
    assert "--certs" in capsys.readouterr().err
    assert not (tmp_path / "state").exists()  # nothing written for a refused start


def test_missing_nginx_is_explained_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("server.deployment.serve.serve", lambda *a, **k: 0)
    monkeypatch.setenv("PATH", str(tmp_path))  # no nginx on PATH ...
    monkeypatch.setattr("server.deployment.proxy.SBIN_NGINX", ())  # ... nor in the sbin folders
    run = ["--insecure", "--dataset", "digits", "--out", str(tmp_path / "run")]
    assert _main(tmp_path, *run) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "nginx not found" in err and "apt-get install nginx-light" in err and "--nginx" in err
    missing = str(tmp_path / "no-nginx")
    assert _main(tmp_path, *run, "--nginx", missing) == EXIT_BAD_INPUT
    assert missing in capsys.readouterr().err
    assert not (tmp_path / "state").exists()


# ---- device keys ----------------------------------------------------------------------


def test_every_node_key_is_registered_by_default(tmp_path: Path, certs: Path) -> None:
    keys = _resolve_keys(_args(tmp_path, "--certs", str(certs)), certs)
    assert [k.name for k in keys] == ["a.pub", "b.pub", "c.pub"]


def test_register_picks_keys_and_refuses_missing_ones(tmp_path: Path, certs: Path) -> None:
    one = certs / "nodes" / "b.pub"
    args = _args(tmp_path, "--certs", str(certs), "--register", str(one))
    assert _resolve_keys(args, certs) == [one.resolve()]
    args = _args(tmp_path, "--insecure", "--register", str(tmp_path / "ghost.pub"))
    with pytest.raises(ConfigError, match="ghost.pub"):
        _resolve_keys(args, None)


# ---- the run config -------------------------------------------------------------------


def test_build_config_for_a_deployment(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = _run_args(tmp_path, out, "--rounds", "4", "--method", "byol", "--no-evaluate")
    cfg = build_config(args, 5)
    assert cfg.node_data is True  # devices read their own data
    assert cfg.num_clients == 5  # one per registered key
    assert cfg.out_dir == str(out.resolve())
    assert (cfg.num_server_rounds, cfg.method, cfg.evaluate) == (4, "byol", False)
    assert build_config(_run_args(tmp_path, out, "--clients", "3"), 5).num_clients == 3


def test_set_overrides_any_key_with_its_type(tmp_path: Path) -> None:
    args = _run_args(
        tmp_path, tmp_path / "r", "--set", "batch-size=32", "--set", " temperature = 0.2 "
    )
    cfg = build_config(args, 3)
    assert cfg.batch_size == 32 and isinstance(cfg.batch_size, int)
    assert cfg.temperature == 0.2


@pytest.mark.parametrize(
    ("item", "match"),
    [
        ("batch-size", "KEY=VALUE"),
        ("no-such-key=1", "unknown config key"),
        ("batch-size=many", "batch-size"),
    ],
)
def test_bad_set_is_refused(tmp_path: Path, item: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build_config(_run_args(tmp_path, tmp_path / "r", "--set", item), 3)


def test_unknown_method_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="method"):
        build_config(_run_args(tmp_path, tmp_path / "r", "--method", "nope"), 3)


def test_secure_aggregation_needs_three_devices(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="num-clients"):
        build_config(_run_args(tmp_path, tmp_path / "r"), 2)


def test_without_out_a_new_timestamped_folder(tmp_path: Path) -> None:
    cfg = build_config(_args(tmp_path, "--insecure", "--dataset", "digits"), 3)
    out = Path(cfg.out_dir)
    assert out.parent == (tmp_path / "state" / "runs").resolve()
    assert out.name.startswith("run-")


def test_without_out_the_unfinished_run_is_picked_up(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = build_config(_run_args(tmp_path, tmp_path / "earlier"), 3)
    _save_config(first)
    write_record(state.resolve(), **{"out-dir": first.out_dir, "status": "interrupted"})
    again = build_config(_args(tmp_path, "--insecure", "--dataset", "digits"), 3)
    assert again.out_dir == first.out_dir
    assert _prepare_out(again) is True
    # Once it has finished, a new folder is used.
    (Path(first.out_dir) / "summary.json").write_text("{}")
    other = build_config(_args(tmp_path, "--insecure", "--dataset", "digits"), 3)
    assert Path(other.out_dir).parent == (state / "runs").resolve()


# ---- the output folder ----------------------------------------------------------------


def test_empty_out_is_a_new_run(tmp_path: Path) -> None:
    assert _prepare_out(build_config(_run_args(tmp_path, tmp_path / "run"), 3)) is False


def test_finished_run_is_refused(tmp_path: Path) -> None:
    cfg = build_config(_run_args(tmp_path, tmp_path / "run"), 3)
    _save_config(cfg)
    (tmp_path / "run" / "summary.json").write_text('{"status": "completed"}')
    with pytest.raises(ConfigError, match="finished"):
        _prepare_out(cfg)


def test_same_config_resumes(tmp_path: Path) -> None:
    cfg = build_config(_run_args(tmp_path, tmp_path / "run"), 3)
    _save_config(cfg)
    assert _prepare_out(build_config(_run_args(tmp_path, tmp_path / "run"), 3)) is True


def test_more_rounds_may_be_asked_for_on_resume(tmp_path: Path) -> None:
    _save_config(build_config(_run_args(tmp_path, tmp_path / "run", "--rounds", "5"), 3))
    args = _run_args(tmp_path, tmp_path / "run", "--rounds", "20", "--max-failed-rounds", "2")
    assert _prepare_out(build_config(args, 3)) is True


def test_changed_method_is_refused_by_name(tmp_path: Path) -> None:
    _save_config(build_config(_run_args(tmp_path, tmp_path / "run"), 3))
    changed = build_config(_run_args(tmp_path, tmp_path / "run", "--method", "byol"), 3)
    with pytest.raises(ConfigError, match="method") as info:
        _prepare_out(changed)
    assert "'simclr' -> 'byol'" in str(info.value)


def test_changed_set_key_is_refused(tmp_path: Path) -> None:
    _save_config(build_config(_run_args(tmp_path, tmp_path / "run"), 3))
    changed = build_config(_run_args(tmp_path, tmp_path / "run", "--set", "learning-rate=0.1"), 3)
    with pytest.raises(ConfigError, match="learning-rate"):
        _prepare_out(changed)
