# SPDX-License-Identifier: Apache-2.0
"""The plumbing in one place each: one settings table as the source of every default, one fork-hook registry."""

from __future__ import annotations

import ast
import gc
import inspect
import logging
import os
import pathlib
from typing import Any

import pytest

import opentelemetry_exporter_lumiqtrace
from opentelemetry_exporter_lumiqtrace import LumiqTraceSpanExporter, _config, _fork

PACKAGE = pathlib.Path(opentelemetry_exporter_lumiqtrace.__file__).parent
# Keywords that are objects, not settings a user could put in a variable.
NOT_SETTINGS = {"retry_policy", "meter_provider"}


def _sources() -> dict[str, ast.Module]:
    return {
        path.name: ast.parse(path.read_text(encoding="utf-8"))
        for path in PACKAGE.glob("*.py")  # the package's own modules (testing/ is the local server's)
    }


def test_every_exporter_keyword_is_in_the_table_and_every_entry_has_its_variable() -> None:
    keywords = {
        name
        for name, parameter in inspect.signature(LumiqTraceSpanExporter).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY and not name.startswith("_") and name not in NOT_SETTINGS
    }
    # sample_rate belongs to the sampler (LumiqTraceSampler(rate=...)) but has its variable like every other.
    assert set(_config.SETTINGS) - {"sample_rate"} == keywords
    for keyword, setting in _config.SETTINGS.items():
        assert setting.keyword == keyword
        assert setting.variable == "LUMIQTRACE_" + keyword.upper()
        assert getattr(_config, setting.variable) == setting.variable  # the LUMIQTRACE_* name constants agree


# (setting, a valid raw value, what it parses to, an invalid raw value)
CASES: list[tuple[Any, str, Any, str]] = [
    (_config.TIMEOUT, "2.5", 2.5, "0"),
    (_config.COMPRESSION, "NONE", "none", "brotli"),
    (_config.CAPTURE_CONTENT, "yes", True, "maybe"),
    (_config.AI_ONLY, "1", True, "2"),
    (_config.BUFFER_MAX_EVENTS, "50", 50, "-1"),
    (_config.BUFFER_MAX_BYTES, "4096", 4096, "4k"),
    (_config.AUTH_PROBE_INTERVAL, "30", 30.0, "nan"),
    (_config.QUOTA_PROBE_INTERVAL, "60", 60.0, "-5"),
    (_config.QUOTA_RATE_FACTOR, "0.25", 0.25, "2"),
    (_config.QUOTA_RATE_FLOOR, "0.01", 0.01, "-0.1"),
    (_config.LINGER, "0", 0.0, "61"),
    (_config.SPOOL_MAX_BYTES, "1048576", 1048576, "0"),
    (_config.SAMPLE_RATE, "0.5", 0.5, "1.5"),
    (_config.CONFIG_POLL_INTERVAL, "15", 15.0, "0"),
]


@pytest.mark.parametrize(("setting", "raw", "parsed", "bad"), CASES, ids=[c[0].keyword for c in CASES])
def test_each_setting_reads_its_variable_and_falls_back_with_one_warning(
    setting: Any, raw: str, parsed: Any, bad: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert setting.resolve(None) == setting.default
    monkeypatch.setenv(setting.variable, raw)
    assert setting.resolve(None) == parsed
    assert setting.resolve(parsed) == parsed  # the keyword beats the variable...
    monkeypatch.setenv(setting.variable, bad)
    with caplog.at_level(logging.WARNING, logger="opentelemetry_exporter_lumiqtrace._config"):
        assert setting.resolve(None) == setting.default
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert setting.variable in warning


def test_table_resolution_is_used_by_the_exporter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUMIQTRACE_CONFIG_POLL_INTERVAL", "7")
    monkeypatch.setenv("LUMIQTRACE_BUFFER_MAX_EVENTS", "77")
    exporter = LumiqTraceSpanExporter(api_key="lqt_" + "0" * 64, base_url="http://127.0.0.1:9")
    try:
        assert exporter._config_poll_interval == 7.0
        assert exporter._buffer_max_events == 77
        assert LumiqTraceSpanExporter(config_poll_interval=3)._config_poll_interval == 3.0
    finally:
        exporter.shutdown(timeout_millis=100)


def _literal(node: ast.AST | None) -> bool:
    """A number spelled out in place (``0.5``, ``64 * 1024``), not a name."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, (int, float)) and not isinstance(node.value, bool)
    if isinstance(node, ast.BinOp):
        return _literal(node.left) and _literal(node.right)
    if isinstance(node, ast.UnaryOp):
        return _literal(node.operand)
    return False


@pytest.mark.parametrize("module", ["delivery.py", "sampling.py", "remote_config.py", "spool.py"])
def test_defaults_live_only_in_the_settings_module(module: str) -> None:
    tree = _sources()[module]
    local = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and _literal(node.value):
            local += [t.id for t in node.targets if isinstance(t, ast.Name) and t.id.startswith("DEFAULT_")]
        if isinstance(node, ast.ClassDef) and node.name == "RetryPolicy":
            local += [
                f"RetryPolicy.{s.target.id}"
                for s in node.body
                if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name) and _literal(s.value)
            ]
    assert local == [], f"{module} keeps its own defaults: {local}"


def test_one_register_at_fork_call_in_the_package() -> None:
    calls = {
        name
        for name, tree in _sources().items()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "register_at_fork"
    }
    assert calls == {"_fork.py"}


class _Owner:
    def __init__(self, pipe_w: int, tag: bytes) -> None:
        self._pipe_w = pipe_w
        self._tag = tag
        _fork.after_fork_in_child(self.hook)

    def hook(self) -> None:
        os.write(self._pipe_w, self._tag)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_hooks_run_in_the_child_in_order_and_do_not_keep_objects_alive() -> None:
    read_end, write_end = os.pipe()
    active = [True]  # plain functions stay registered for good: make them inert once the test is over
    try:
        kept = _Owner(write_end, b"a")
        dropped = _Owner(write_end, b"x")
        del dropped
        gc.collect()

        def failing() -> None:
            if active[0]:
                raise RuntimeError("a broken hook")

        def second() -> None:
            if active[0]:
                os.write(write_end, b"b")

        _fork.after_fork_in_child(failing)
        _fork.after_fork_in_child(second)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        os.close(write_end)
        write_end = -1
        ran = b""
        while chunk := os.read(read_end, 64):
            ran += chunk
        # The live owner's hook ran, the collected one's did not, and a failing hook did not stop the next.
        assert ran == b"ab"
        del kept  # its weakly held hook goes with it
    finally:
        active[0] = False
        os.close(read_end)
        if write_end != -1:
            os.close(write_end)
