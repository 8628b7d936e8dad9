"""The app Celery's own tools load: ``celery -A workers.celery_app ...``.

Configured from Celerity's settings (``CELERITY_BROKER_URL`` and the rest, as
every fleet process is), so these work on a running fleet::

    celery -A workers.celery_app inspect active      # also stats, registered, reserved
    celery -A workers.celery_app control enable_events
    celery -A workers.celery_app events              # curses monitor
    celery -A workers.celery_app flower              # web monitor (pip install 'celerity[monitor]')

``inspect`` and ``control`` need workers started with ``CELERITY_REMOTE_CONTROL=true``;
``events`` and Flower need workers started with ``-E`` (``CELERITY_WORKER_EVENTS=true``).
The app holds no signing key (see ``workers.app.create_tools_app``): it cannot
send a job, and ``celery -A workers.celery_app worker`` refuses to start.
"""

from __future__ import annotations

from workers.app import create_tools_app

app = create_tools_app()

__all__ = ["app"]
