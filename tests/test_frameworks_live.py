# SPDX-License-Identifier: Apache-2.0
"""The real frameworks, live: each runs ``tests/golden/drive_frameworks.py`` in a subprocess against the fake
providers, and what it emits must still look like what was recorded in ``tests/golden/corpus/fw-*.json``.

Needs the ``frameworks`` extra (``pip install -e ".[test,frameworks]"``); without it every test skips. CI runs it
as its own step after the README's test command. When a pinned version moves and the spans change, re-record with
``python tests/golden/drive_frameworks.py <framework> --record`` and review the diff.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.test_frameworks_golden import CASES, exported, framework_and_scenario

sys.path.insert(0, str(Path(__file__).parent / "golden"))
from corpus import Case

DRIVER = Path(__file__).parent / "golden" / "drive_frameworks.py"
REQUIRED = ("pydantic_ai", "agents", "langchain_openai", "anthropic", "logfire", "openinference.instrumentation")
FRAMEWORKS = sorted({framework_and_scenario(name)[0] for name in CASES})


def _installed() -> bool:
    try:
        return all(importlib.util.find_spec(module) is not None for module in REQUIRED)
    except ModuleNotFoundError:
        return False


pytestmark = pytest.mark.skipif(not _installed(), reason='needs the frameworks extra: pip install -e ".[frameworks]"')


def _run(framework: str) -> dict[str, list[dict[str, Any]]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LUMIQTRACE_", "OTEL_", "LOGFIRE_", "ANTHROPIC_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent.parent), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, str(DRIVER), framework], capture_output=True, text=True, timeout=180, env=env, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    recorded: dict[str, list[dict[str, Any]]] = json.loads(done.stdout)
    return recorded


def _shape(spans: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    return Counter((s["name"], (s["scope"] or {}).get("name", "")) for s in spans)


def _conventions(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> Counter[tuple[Any, ...]]:
    """What the conventions read from each span (issue 12 items 2-7), without ids, times and ports."""
    return Counter(
        (
            f["name"],
            (f["scope"] or {}).get("name", ""),
            e["span_kind"],
            e["operation"],
            e["status"],
            e.get("error_code"),
            e.get("stream"),
            e.get("finish_reason"),
            e.get("user_id"),
            "ttft_ms" in e,
        )
        for f, e in pairs
    )


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_live_spans_match_the_recording_and_count_once(framework: str) -> None:
    live = _run(framework)
    recorded = {framework_and_scenario(n)[1]: c for n, c in CASES.items() if framework_and_scenario(n)[0] == framework}
    assert sorted(live) == sorted(recorded)
    for scenario, spans in live.items():
        assert _shape(spans) == _shape(recorded[scenario].spans), scenario
        case = Case(path=Path(f"fw-{framework}-{scenario}.json"), description="live", source="live", spans=spans)
        pairs = exported(case)  # every span mapped to a valid event
        counted = sorted((e.get("input_tokens"), e.get("output_tokens")) for _, e in pairs if "input_tokens" in e)
        expected_counts = sorted(
            (e.get("input_tokens"), e.get("output_tokens"))
            for _, e in exported(recorded[scenario])
            if "input_tokens" in e
        )
        assert counted == expected_counts, scenario  # the golden tests tie these to the fake server's counts
        assert _conventions(pairs) == _conventions(exported(recorded[scenario])), scenario
