"""The dashboard's web app: two pages, the JSON API they use, and ``/metrics``.

Pages (static HTML + plain JavaScript under ``static/``, nothing fetched from
elsewhere):

- ``/``: the runs list (filters: state, flow), workers and queue depths.
- ``/runs/{id}``: one flow run: task graph, timeline, logs, parameters, result,
  and the retry / resume buttons when the token allows them.

API (JSON, what the pages poll):

- ``GET /api/info``: version, store, whether actions are enabled.
- ``GET /api/openapi.json``: the API's OpenAPI schema.
- ``GET /api/runs?state=&flow=&limit=``: recent flow runs, filtered.
- ``GET /api/runs/{id}``: one flow run with its task runs, state history, result.
- ``GET /api/runs/{id}/logs?offset=``: its log lines from ``offset`` on.
- ``GET /api/workers``, ``GET /api/queues``: the fleet as the broker sees it.
- ``POST /api/runs/{id}/retry``, ``POST /api/runs/{id}/resume``: actions
  (``Authorization: Bearer <CELERITY_DASHBOARD_TOKEN>``).

Handlers are plain ``def``: FastAPI runs them in its thread pool, so a slow
Redis read or a Celery broadcast never blocks the event loop.
"""

from __future__ import annotations

import uuid
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from fastapi import Body, FastAPI, Header, HTTPException, Query
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from broker_config.settings import CeleritySettings, mask_url
from celerity.dashboard import actions
from celerity.dashboard.fleet import FleetProbe
from celerity.dashboard.metrics import metrics_registry
from celerity.dashboard.runs import RunNotFound, RunReader, RunsQuery
from engine.store.base import RunStore

STATIC = Path(__file__).parent / "static"
MAX_LIMIT = 500


def create_app(settings: CeleritySettings, store: RunStore) -> FastAPI:
    """The dashboard for the fleet that ``settings`` name, reading runs from ``store``."""
    # FastAPI's docs pages load their scripts from a CDN: only the schema is served here.
    app = FastAPI(
        title="Celerity dashboard",
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    reader = RunReader(store)
    fleet = FleetProbe(settings)
    guard = actions.TokenGuard(settings.dashboard_token)
    _pages(app)
    _run_routes(app, reader)
    _fleet_routes(app, reader, fleet)
    _action_routes(app, guard)
    _info_routes(app, store, guard, metrics_registry(reader, fleet))
    return app


def _pages(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def runs_page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/runs/{run_id}", include_in_schema=False)
    def run_page(run_id: str) -> FileResponse:
        return FileResponse(STATIC / "run.html")


def _run_routes(app: FastAPI, reader: RunReader) -> None:
    @app.get("/api/runs")
    def list_runs(
        state: str | None = None,
        flow: str | None = None,
        limit: int = Query(50, ge=1, le=MAX_LIMIT),
    ) -> dict[str, Any]:
        """Recent flow runs, newest first, filtered by state (name or type) and flow name."""
        query = RunsQuery(state=state or None, flow=flow or None, limit=limit)
        try:
            return reader.list_runs(query)
        except ValueError as exc:  # an unknown state name
            raise HTTPException(status_code=422, detail=str(exc)) from None

    @app.get("/api/runs/{run_id}")
    def run_detail(run_id: uuid.UUID) -> dict[str, Any]:
        """A flow run with its task runs, upstream edges, state history and result."""
        return _found(lambda: reader.run_detail(run_id))

    @app.get("/api/runs/{run_id}/logs")
    def run_logs(run_id: uuid.UUID, offset: int = Query(0, ge=0)) -> dict[str, Any]:
        """A flow run's log lines (its task runs' included) from ``offset`` on."""
        return _found(lambda: reader.logs(run_id, offset))


def _found(read: Any) -> Any:
    try:
        return read()
    except RunNotFound as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None


def _fleet_routes(app: FastAPI, reader: RunReader, fleet: FleetProbe) -> None:
    @app.get("/api/workers")
    def workers() -> dict[str, Any]:
        """Workers that answered Celery's inspect (else sent heartbeats), and the processes
        that ran recent task runs."""
        answered = fleet.workers()
        return {**answered, "seen_in_runs": reader.workers_seen()}

    @app.get("/api/queues")
    def queues() -> dict[str, Any]:
        """Each declared queue: jobs waiting in it, and reserved by a worker (not acknowledged)."""
        return {"queues": fleet.queues()}


def _action_routes(app: FastAPI, guard: actions.TokenGuard) -> None:
    @app.post("/api/runs/{run_id}/retry")
    def retry(run_id: uuid.UUID, authorization: str | None = Header(None)) -> dict[str, Any]:
        """Run a Failed or Crashed flow run again (needs the token)."""
        return _act(guard, authorization, lambda: actions.retry(run_id))

    @app.post("/api/runs/{run_id}/resume")
    def resume(
        run_id: uuid.UUID,
        authorization: str | None = Header(None),
        body: dict[str, Any] | None = Body(None),
    ) -> dict[str, Any]:
        """Resume a paused flow run; ``{"input": ...}`` for one that waits for input."""
        run_input = (body or {}).get("input")
        return _act(guard, authorization, lambda: actions.resume(run_id, run_input))


def _act(guard: actions.TokenGuard, authorization: str | None, action: Any) -> dict[str, Any]:
    try:
        guard.check(authorization)
        return {"ok": True, "message": action()}
    except actions.ActionRefused as exc:
        raise HTTPException(status_code=exc.status, detail=str(exc)) from None


def _info_routes(
    app: FastAPI,
    store: RunStore,
    guard: actions.TokenGuard,
    registry: Any,
) -> None:
    @app.get("/api/info")
    def info() -> dict[str, Any]:
        """What the pages need to know about this dashboard."""
        return {
            "version": _version(),
            "store": mask_url(store.url) if store.url else "memory",
            "actions_enabled": guard.enabled,
            "actions": list(actions.ACTIONS) if guard.enabled else [],
        }

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        return JSONResponse({"ok": True})

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def _version() -> str:
    try:
        return version("celerity")
    except PackageNotFoundError:
        return "unknown"
