"""The fedssl ServerApp: ``flwr run .`` loads ``app``; ``fedssl simulate`` builds one
with ``make_server_app(cfg)`` (the in-process simulation passes no run config)."""

from __future__ import annotations

import json
from pathlib import Path

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from common.app_signing import APP_SIGNATURE_KEY
from common.config import RunConfig
from common.logs import setup_logging
from server.fast_grid import with_fast_polling
from server.run import default_out_dir, run_federated
from server.run_end import announce_run_end


def make_server_app(cfg: RunConfig | None = None) -> ServerApp:
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        setup_logging()
        if cfg is not None:
            run_cfg = cfg
        else:
            # The signature is for the devices (client.clientapp_runner), not a run option.
            flat = {k: v for k, v in context.run_config.items() if k != APP_SIGNATURE_KEY}
            run_cfg = RunConfig.from_flat(flat)
            # `flwr run`: the ServerApp's working directory is the SuperLink's, so an
            # unset out-dir goes to an absolute folder under the home directory.
            if not run_cfg.out_dir:
                out = Path.home() / "fedssl-runs" / default_out_dir(run_cfg).name
                run_cfg = run_cfg.replace(out_dir=str(out))
        try:
            run_federated(grid, context, run_cfg)
        finally:
            # Devices hear that the run ended when it did (completed or failed); after a
            # crash they keep waiting, so that a restarted server can resume the run.
            summary = Path(run_cfg.out_dir) / "summary.json"
            if run_cfg.node_data and summary.is_file():
                announce_run_end(with_fast_polling(grid), json.loads(summary.read_text()))

    return server_app


app = make_server_app()
