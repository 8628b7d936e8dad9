"""``celerity dashboard``: serve the web dashboard of the fleet the settings name."""

from __future__ import annotations

import click

from celerity.cli_common import broker_settings, check_broker, console

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8433


@click.command("dashboard")
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="Port to listen on.",
)
def dashboard(host: str, port: int) -> None:
    """Serve the web dashboard: runs, task graphs, logs, workers, queues, /metrics.

    Read-only unless CELERITY_DASHBOARD_TOKEN is set; then its retry and resume
    buttons (and POST /api/...) need that token.
    """
    settings = broker_settings()
    check_broker(settings)
    # FastAPI, uvicorn and the engine load only for this command: other commands stay quick.
    import uvicorn

    from celerity.dashboard.app import create_app
    from engine.store import get_store

    app = create_app(settings, get_store())
    mode = "actions need the token" if settings.dashboard_token else "read-only"
    console(stderr=True).print(
        f"Celerity dashboard on http://{host}:{port}/ ({mode})", markup=False
    )
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


COMMANDS = [dashboard]
