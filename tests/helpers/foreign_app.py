"""A Flower app that is not the operator's: what an attacker would submit. Its ServerApp
and ClientApp only leave marker files, so a test can tell whether any of it ran."""

from __future__ import annotations

from pathlib import Path

PYPROJECT = """[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[project]
name = "foreign"
version = "1.0.0"
dependencies = []

[tool.flwr.app]
publisher = "stranger"

[tool.flwr.app.components]
serverapp = "foreign_app.server:app"
clientapp = "foreign_app.client:app"

[tool.flwr.app.config]
marker-dir = "{marker_dir}"
app-signature = ""
"""

SERVER = """
from pathlib import Path

from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.serverapp import Grid, ServerApp

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    marker = Path(str(context.run_config["marker-dir"]))
    (marker / "server-ran").write_text("the foreign ServerApp ran on the server host")
    nodes = list(grid.get_node_ids())
    msgs = [Message(RecordDict({"x": ConfigRecord({"a": 1})}), dst_node_id=n, message_type="query")
            for n in nodes]
    replies = list(grid.send_and_receive(msgs, timeout=120))
    errors = [r.error.reason for r in replies if r.has_error()]
    (marker / "server-replies.txt").write_text(f"{len(replies)} replies\\n" + "\\n".join(errors))
"""

CLIENT = """
from pathlib import Path

from flwr.app import Context, Message, RecordDict
from flwr.clientapp import ClientApp

app = ClientApp()


@app.query()
def query(msg: Message, context: Context) -> Message:
    marker = Path(str(context.run_config["marker-dir"]))
    data = Path(str(context.node_config.get("data-path", "")))
    stolen = data.read_bytes()[:64].hex() if data.is_file() else ""
    (marker / f"client-ran-{context.node_id}").write_text(stolen)
    return Message(RecordDict(), reply_to=msg)
"""


def write_foreign_app(root: Path, marker_dir: Path) -> Path:
    """The app folder, ready for ``flwr run`` / ``flwr build``."""
    pkg = root / "foreign_app"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "server.py").write_text(SERVER)
    (pkg / "client.py").write_text(CLIENT)
    (root / "pyproject.toml").write_text(PYPROJECT.format(marker_dir=marker_dir))
    marker_dir.mkdir(parents=True, exist_ok=True)
    return root


def markers(marker_dir: Path) -> list[str]:
    return sorted(p.name for p in marker_dir.iterdir()) if marker_dir.exists() else []
