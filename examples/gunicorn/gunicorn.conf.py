# SPDX-License-Identifier: Apache-2.0
"""gunicorn configuration: set tracing up in each worker, after the fork.

    gunicorn -c examples/gunicorn/gunicorn.conf.py --chdir examples/flask_app app:app

The exporter is fork-safe, but a ``BatchSpanProcessor`` thread started in the master does not survive ``fork()``:
setting up per worker in ``post_fork`` works with and without ``--preload``, and each worker sends its own spans.
"""

from __future__ import annotations

import os
from typing import Any

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "4"))


def post_fork(server: Any, worker: Any) -> None:
    from app import app, setup_tracing  # examples/flask_app/app.py (--chdir puts it on the path)

    setup_tracing(app)
    server.log.info("worker %s: tracing to LumiqTrace set up", worker.pid)


def worker_exit(server: Any, worker: Any) -> None:
    # Flush what the worker still holds before it goes (the SDK's atexit hook does not run on every exit path).
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    shutdown = getattr(provider, "shutdown", None)
    if shutdown is not None:
        shutdown()
