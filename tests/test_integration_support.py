# SPDX-License-Identifier: Apache-2.0
"""Helpers for the integration tests: run an example as a real process, read its address, stop it cleanly.

No tests here; the ``test_integration_*`` modules import these.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry_exporter_lumiqtrace.testing import LocalIngestServer

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def example_env(server: LocalIngestServer | None = None, **extra: str) -> dict[str, str]:
    """The test's environment without OTEL_/LUMIQTRACE_ settings, pointed at ``server``, with fast batching."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LUMIQTRACE_", "LLM_"))}
    env["OTEL_BSP_SCHEDULE_DELAY"] = "100"  # milliseconds: spans reach the server quickly
    env["PYTHONUNBUFFERED"] = "1"
    if server is not None:
        env["LUMIQTRACE_API_KEY"] = server.api_key
        env["LUMIQTRACE_BASE_URL"] = server.base_url
    env.update(extra)
    return env


@dataclass
class Running:
    process: subprocess.Popen[str]
    match: re.Match[str]
    lines: list[str] = field(default_factory=list)
    stderr: str = ""

    @property
    def output(self) -> str:
        return "".join(self.lines) + self.stderr


@contextmanager
def running(
    argv: Sequence[str],
    *,
    ready: str,
    env: Mapping[str, str],
    cwd: Path | None = None,
    timeout: float = 30.0,
    stop_signal: int = signal.SIGTERM,
) -> Iterator[Running]:
    """Start ``argv``; wait for a line of its combined output matching ``ready``; stop it with ``stop_signal``."""
    process = subprocess.Popen(
        list(argv),
        env=dict(env),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    seen: list[str] = []

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            seen.append(line)  # live: tests read Running.lines while the process runs
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    pattern = re.compile(ready)
    match: re.Match[str] | None = None
    try:
        while match is None:
            try:
                line = lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"{argv} not ready after {timeout} s:\n{''.join(seen)}") from None
            if line is None:
                raise AssertionError(f"{argv} exited with {process.wait()} before ready:\n{''.join(seen)}")
            match = pattern.search(line)
        result = Running(process, match, seen)
        yield result
    finally:
        if process.poll() is None:
            process.send_signal(stop_signal)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        reader.join(timeout=5)
        if process.stdout is not None:
            process.stdout.close()


def tree(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Events by span name (one trace's events, names unique within it)."""
    return {event["tags"]["otel.span_name"]: event for event in events}
