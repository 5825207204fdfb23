"""The fedssl ServerApp: ``flwr run .`` loads ``app``; ``fedssl simulate`` builds one
with ``make_server_app(cfg)`` (the in-process simulation passes no run config)."""

from __future__ import annotations

from pathlib import Path

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from common.config import RunConfig
from common.logs import setup_logging
from server.run import default_out_dir, run_federated


def make_server_app(cfg: RunConfig | None = None) -> ServerApp:
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        setup_logging()
        if cfg is not None:
            run_cfg = cfg
        else:
            # `flwr run`: the ServerApp's working directory is the SuperLink's, so an
            # unset out-dir goes to an absolute folder under the home directory.
            run_cfg = RunConfig.from_flat(dict(context.run_config))
            if not run_cfg.out_dir:
                out = Path.home() / "fedssl-runs" / default_out_dir(run_cfg).name
                run_cfg = run_cfg.replace(out_dir=str(out))
        run_federated(grid, context, run_cfg)

    return server_app


app = make_server_app()
