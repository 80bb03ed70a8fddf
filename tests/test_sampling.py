# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import random
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Decision, Sampler, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from opentelemetry_exporter_lumiqtrace import sampling
from opentelemetry_exporter_lumiqtrace.sampling import (
    ENV_SAMPLE_RATE,
    SAMPLE_RATE_ATTRIBUTE,
    LumiqTraceSampler,
    SamplingSnapshot,
    SamplingState,
    bound_for_rate,
    shared_sampling_state,
    traces_sampler_factory,
)

_LOW64 = (1 << 64) - 1
_SUBPROCESS_TIMEOUT_S = 60


@pytest.fixture(autouse=True)
def _clean_shared_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(ENV_SAMPLE_RATE, raising=False)
    shared_sampling_state().reset()
    yield
    shared_sampling_state().reset(1.0)


def _parent(*, sampled: bool, remote: bool, trace_id: int = 0xABC) -> Context:
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    ctx = SpanContext(trace_id=trace_id, span_id=0x123, is_remote=remote, trace_flags=flags)
    return trace.set_span_in_context(NonRecordingSpan(ctx))


def _child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LUMIQTRACE_"))}
    env.update(OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none")
    env.update(extra)
    return env


# ---------------------------------------------------------------------------------------------------------------
# The SDK's own configuration paths


_ENV_CONFIG_SCRIPT = textwrap.dedent(
    """
    import json
    from opentelemetry import trace
    from opentelemetry.sdk._configuration import _OTelSDKConfigurator
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    _OTelSDKConfigurator().configure()
    provider = trace.get_tracer_provider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("sampling-test")

    roots = {}
    for i in range(4000):
        with tracer.start_as_current_span("root", attributes={"user.attr": i}) as root:
            with tracer.start_as_current_span("child"):
                with tracer.start_as_current_span("grandchild"):
                    pass
            with tracer.start_as_current_span("sibling"):
                pass
        roots[root.get_span_context().trace_id] = root.get_span_context().trace_flags.sampled

    by_trace = {}
    root_attrs = []
    for span in memory.get_finished_spans():
        by_trace.setdefault(span.context.trace_id, []).append(span.name)
        if span.parent is None:
            root_attrs.append(dict(span.attributes))
    print(json.dumps({
        "sampler": provider.sampler.get_description(),
        "sampler_class": type(provider.sampler).__name__,
        "roots": len(roots),
        "kept": sorted(format(t, "032x") for t in by_trace),
        "spans_per_trace": sorted({len(v) for v in by_trace.values()}),
        "root_attrs": root_attrs[:3],
        "unsampled_root_ids": [format(t, "032x") for t, s in roots.items() if not s][:2000],
    }))
    """
)


def test_env_configured_sampler_keeps_a_quarter_of_whole_traces() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _ENV_CONFIG_SCRIPT],
        env=_child_env(OTEL_TRACES_SAMPLER="lumiqtrace", OTEL_TRACES_SAMPLER_ARG="0.25"),
        capture_output=True,
        text=True,
        timeout=_SUBPROCESS_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["sampler_class"] == "LumiqTraceSampler"
    assert out["sampler"] == "LumiqTraceSampler{rate=0.25}"

    n = out["roots"]
    kept = out["kept"]
    sigma = math.sqrt(n * 0.25 * 0.75)
    assert abs(len(kept) - n * 0.25) < 5 * sigma, len(kept)
    # Whole traces only: every kept trace has its root and all three descendants.
    assert out["spans_per_trace"] == [4]
    # The kept set is exactly the TraceIdRatioBased(0.25) set.
    bound = bound_for_rate(0.25)
    assert all(int(t, 16) & _LOW64 < bound for t in kept)
    assert all(int(t, 16) & _LOW64 >= bound for t in out["unsampled_root_ids"])
    assert out["unsampled_root_ids"], "some roots must have been dropped"
    for attrs in out["root_attrs"]:
        assert attrs[SAMPLE_RATE_ATTRIBUTE] == 0.25
        assert "user.attr" in attrs


def test_env_configured_sampler_with_bad_arg_warns_and_uses_env_rate() -> None:
    script = textwrap.dedent(
        """
        from opentelemetry import trace
        from opentelemetry.sdk._configuration import _OTelSDKConfigurator
        _OTelSDKConfigurator().configure()
        print(trace.get_tracer_provider().sampler.get_description())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=_child_env(OTEL_TRACES_SAMPLER="lumiqtrace", OTEL_TRACES_SAMPLER_ARG="lots", LUMIQTRACE_SAMPLE_RATE="0.5"),
        capture_output=True,
        text=True,
        timeout=_SUBPROCESS_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "LumiqTraceSampler{rate=0.5}"
    assert result.stderr.count("OTEL_TRACES_SAMPLER_ARG") == 1


def test_declarative_config_loads_the_sampler_entry_point(tmp_path: Path) -> None:
    pytest.importorskip("opentelemetry.configuration")
    config = tmp_path / "otel.yaml"
    config.write_text(
        textwrap.dedent(
            """
            file_format: "1.0"
            tracer_provider:
              processors:
                - simple:
                    exporter:
                      console:
              sampler:
                lumiqtrace:
            """
        )
    )
    script = textwrap.dedent(
        """
        from opentelemetry import trace
        from opentelemetry.sdk._configuration import _OTelSDKConfigurator
        _OTelSDKConfigurator().configure()
        print(trace.get_tracer_provider().sampler.get_description())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=_child_env(OTEL_CONFIG_FILE=str(config), LUMIQTRACE_SAMPLE_RATE="0.125"),
        capture_output=True,
        text=True,
        timeout=_SUBPROCESS_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "LumiqTraceSampler{rate=0.125}"


# ---------------------------------------------------------------------------------------------------------------
# SamplingState


def test_shared_state_is_one_object() -> None:
    assert shared_sampling_state() is shared_sampling_state()
    assert LumiqTraceSampler().state is shared_sampling_state()


def test_ratchet_down_applies_factor_and_floor_and_never_rises() -> None:
    state = SamplingState(1.0)
    assert state.ratchet_down(factor=0.5, floor=0.1) == 0.5
    assert state.ratchet_down(factor=0.5, floor=0.1) == 0.25
    assert state.ratchet_down(factor=0.5, floor=0.1) == 0.125
    assert state.ratchet_down(factor=0.5, floor=0.1) == 0.1
    assert state.ratchet_down(factor=0.5, floor=0.1) == 0.1
    assert state.rate == 0.1
    assert state.bound == bound_for_rate(0.1)

    # Already below the floor: a ratchet must not raise it to the floor.
    low = SamplingState(0.05)
    assert low.ratchet_down(factor=0.5, floor=0.1) == 0.05
    assert low.rate == 0.05
    # A factor of 1 changes nothing.
    assert low.ratchet_down(factor=1.0, floor=0.0) == 0.05


def test_explicit_set_raises_the_rate_and_validates() -> None:
    state = SamplingState(1.0)
    state.ratchet_down(factor=0.25, floor=0.0)
    state.set_rate(0.9)
    assert state.rate == 0.9
    assert state.bound == bound_for_rate(0.9)
    for bad in (-0.01, 1.01, float("nan"), float("inf"), "0.5", None, True):
        with pytest.raises(ValueError):
            state.set_rate(bad)  # type: ignore[arg-type]
    assert state.rate == 0.9
    with pytest.raises(ValueError):
        state.ratchet_down(factor=2.0, floor=0.0)
    with pytest.raises(ValueError):
        state.ratchet_down(factor=0.5, floor=-1.0)
    assert state.rate == 0.9


def test_reset_goes_back_to_env_rate_and_clears_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    state = SamplingState(1.0)
    state.set_rate(0.3)
    state.set_disabled(True)
    monkeypatch.setenv(ENV_SAMPLE_RATE, "0.75")
    state.reset()
    assert state.rate == 0.75
    assert not state.disabled
    state.reset(0.2)
    assert state.rate == 0.2


def test_snapshot_is_immutable_and_replaced_on_write() -> None:
    state = SamplingState(0.5)
    before = state.snapshot()
    assert state.snapshot() is before
    with pytest.raises(dataclasses.FrozenInstanceError):
        before.rate = 0.1  # type: ignore[misc]
    state.set_rate(0.25)
    after = state.snapshot()
    assert after is not before
    assert (before.rate, before.bound) == (0.5, bound_for_rate(0.5))
    assert (after.rate, after.bound) == (0.25, bound_for_rate(0.25))
    state.set_disabled(True)
    assert state.snapshot().rate == 0.25 and state.snapshot().disabled


def test_readers_do_not_take_the_writer_lock() -> None:
    state = SamplingState(0.5)
    sampler = LumiqTraceSampler(state=state)
    results: list[object] = []
    # Hold the writers' lock: if any read path took it, the reader thread would block and the join time out.
    with state._lock:

        def read() -> None:
            results.append(state.rate)
            results.append(state.keeps(1))
            results.append(state.snapshot().bound)
            results.append(state.disabled)
            results.append(sampler.should_sample(None, 1, "root").decision)
            results.append(sampler.get_description())

        reader = threading.Thread(target=read)
        reader.start()
        reader.join(timeout=1.0)
        alive = reader.is_alive()
    reader.join()
    assert not alive, "a read blocked on the writer lock"
    assert results == [0.5, True, bound_for_rate(0.5), False, Decision.RECORD_AND_SAMPLE, "LumiqTraceSampler{rate=0.5}"]


@given(
    trace_id=st.one_of(
        st.integers(min_value=1, max_value=(1 << 128) - 1),
        st.sampled_from([bound_for_rate(0.25) - 1, bound_for_rate(0.25), (1 << 64) - 1, 1 << 64, (1 << 128) - 1]),
    ),
    rate=st.one_of(st.sampled_from([0.0, 1e-9, 0.25, 0.5, 0.999999, 1.0]), st.floats(min_value=0.0, max_value=1.0)),
)
def test_decisions_match_trace_id_ratio_based(trace_id: int, rate: float) -> None:
    reference = TraceIdRatioBased(rate).should_sample(None, trace_id, "root").decision is Decision.RECORD_AND_SAMPLE
    state = SamplingState(rate)
    assert state.bound == TraceIdRatioBased(rate).bound
    assert state.keeps(trace_id) is reference
    decision = LumiqTraceSampler(state=state).should_sample(None, trace_id, "root").decision
    assert (decision is Decision.RECORD_AND_SAMPLE) is reference


def test_bad_env_value_warns_once_and_falls_back(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for bad in (f"often-{uuid.uuid4().hex}", "1.5", "-0.1", "nan"):
        monkeypatch.setenv(ENV_SAMPLE_RATE, bad)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger=sampling.__name__):
            assert SamplingState().rate == 1.0
            first = [r for r in caplog.records if ENV_SAMPLE_RATE in r.getMessage()]
            assert SamplingState().rate == 1.0
            state = SamplingState()
            state.reset()
            assert state.rate == 1.0
        warnings = [r for r in caplog.records if ENV_SAMPLE_RATE in r.getMessage()]
        if bad.startswith("often-"):
            assert len(first) == 1 and first[0].levelno == logging.WARNING
            assert bad in first[0].getMessage()
        # However often it is read, one warning per bad value.
        assert len(warnings) <= 1


def test_good_env_value_is_used_without_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(ENV_SAMPLE_RATE, " 0.3 ")
    with caplog.at_level(logging.WARNING, logger=sampling.__name__):
        assert SamplingState().rate == 0.3
        shared_sampling_state().reset()
        assert LumiqTraceSampler().rate == 0.3
    assert not caplog.records


# ---------------------------------------------------------------------------------------------------------------
# LumiqTraceSampler


def test_sampler_is_a_public_sdk_sampler_with_description() -> None:
    sampler = LumiqTraceSampler(0.25)
    assert isinstance(sampler, Sampler)
    assert sampler.rate == 0.25
    assert shared_sampling_state().rate == 0.25
    assert sampler.get_description() == "LumiqTraceSampler{rate=0.25}"
    with pytest.raises(ValueError):
        LumiqTraceSampler(1.5)
    assert sampler.rate == 0.25


def test_explicit_sampler_rate_raises_a_ratcheted_shared_rate() -> None:
    state = shared_sampling_state()
    state.ratchet_down(factor=0.5, floor=0.01)
    sampler = LumiqTraceSampler()
    assert sampler.rate == 0.5
    LumiqTraceSampler(rate=0.8)
    assert sampler.rate == 0.8


def test_rate_changes_reach_an_existing_sampler() -> None:
    sampler = LumiqTraceSampler(1.0)
    trace_id = (0xFEED << 64) | (bound_for_rate(0.5) + 1)
    assert sampler.should_sample(None, trace_id, "root").decision is Decision.RECORD_AND_SAMPLE
    shared_sampling_state().ratchet_down(factor=0.5, floor=0.0)
    assert sampler.should_sample(None, trace_id, "root").decision is Decision.DROP
    assert sampler.get_description() == "LumiqTraceSampler{rate=0.5}"


@pytest.mark.parametrize("remote", [True, False])
def test_children_follow_the_parent_flag(remote: bool) -> None:
    state = SamplingState(0.0)
    sampler = LumiqTraceSampler(state=state)
    kept = sampler.should_sample(_parent(sampled=True, remote=remote), 0xABC, "child", attributes={"a": 1})
    assert kept.decision is Decision.RECORD_AND_SAMPLE
    assert dict(kept.attributes) == {"a": 1}  # the rate is stamped on roots only

    state.set_rate(1.0)
    dropped = sampler.should_sample(_parent(sampled=False, remote=remote), 0xABC, "child", attributes={"a": 1})
    assert dropped.decision is Decision.DROP
    assert not dropped.attributes


def test_child_keeps_parent_trace_state() -> None:
    flags = TraceFlags(TraceFlags.SAMPLED)
    ts = trace.TraceState([("vendor", "value")])
    ctx = SpanContext(trace_id=7, span_id=9, is_remote=True, trace_flags=flags, trace_state=ts)
    result = LumiqTraceSampler(state=SamplingState(1.0)).should_sample(
        trace.set_span_in_context(NonRecordingSpan(ctx)), 7, "child"
    )
    assert result.trace_state == ts


def test_root_carries_rate_and_user_attributes() -> None:
    result = LumiqTraceSampler(state=SamplingState(1.0)).should_sample(None, 5, "root", attributes={"k": "v"})
    assert result.decision is Decision.RECORD_AND_SAMPLE
    assert dict(result.attributes) == {"k": "v", SAMPLE_RATE_ATTRIBUTE: 1.0}
    assert isinstance(result.attributes[SAMPLE_RATE_ATTRIBUTE], float)


def test_disabled_drops_roots_and_children() -> None:
    state = SamplingState(1.0)
    sampler = LumiqTraceSampler(state=state)
    state.set_disabled(True)
    assert state.disabled
    assert not state.keeps(1)
    assert sampler.should_sample(None, 1, "root").decision is Decision.DROP
    for remote in (True, False):
        decision = sampler.should_sample(_parent(sampled=True, remote=remote), 1, "child").decision
        assert decision is Decision.DROP
    assert "disabled" in sampler.get_description()
    state.set_disabled(False)
    assert sampler.should_sample(None, 1, "root").decision is Decision.RECORD_AND_SAMPLE
    assert state.rate == 1.0


def test_factory_parses_the_sampler_arg(caplog: pytest.LogCaptureFixture) -> None:
    sampler = traces_sampler_factory("0.25")
    assert isinstance(sampler, LumiqTraceSampler)
    assert shared_sampling_state().rate == 0.25

    assert traces_sampler_factory(None).rate == 0.25
    assert traces_sampler_factory("  ").rate == 0.25

    shared_sampling_state().reset()
    for bad in ("a quarter", "1.5", "-1", "nan"):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger=sampling.__name__):
            assert traces_sampler_factory(bad).rate == 1.0
        messages = [r.getMessage() for r in caplog.records]
        assert len(messages) == 1 and "OTEL_TRACES_SAMPLER_ARG" in messages[0]


# ---------------------------------------------------------------------------------------------------------------
# Concurrency


def test_many_readers_one_writer_always_see_consistent_snapshots() -> None:
    state = SamplingState(1.0)
    rates = [1.0, 0.5, 0.25, 0.1, 0.01, 0.0]
    # ratchet_down(factor=0.5) produces halves of the listed rates.
    valid = {r: bound_for_rate(r) for r in [*rates, *(r * 0.5 for r in rates)]}
    stop = threading.Event()
    errors: list[str] = []
    reads = [0] * 8

    def reader(index: int) -> None:
        rng = random.Random(index)
        while not stop.is_set():
            snap: SamplingSnapshot = state.snapshot()
            if valid.get(snap.rate) != snap.bound:
                errors.append(f"rate {snap.rate} with bound {snap.bound}")
                return
            trace_id = rng.getrandbits(128)
            if snap.keeps(trace_id) != (not snap.disabled and (trace_id & _LOW64) < valid[snap.rate]):
                errors.append("keeps disagrees with its own snapshot")
                return
            state.keeps(trace_id)
            reads[index] += 1

    def writer() -> None:
        i = 0
        deadline = time.monotonic() + 0.4
        while time.monotonic() < deadline:
            state.set_rate(rates[i % len(rates)])
            state.ratchet_down(factor=0.5, floor=0.0)
            state.set_rate(rates[(i + 3) % len(rates)])
            state.set_disabled(i % 2 == 0)
            i += 1
        stop.set()

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(len(reads))]
    for t in threads:
        t.start()
    writer_thread = threading.Thread(target=writer)
    writer_thread.start()
    writer_thread.join(timeout=10)
    stop.set()
    for t in threads:
        t.join(timeout=10)
    assert not errors, errors[:3]
    assert all(n > 0 for n in reads)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_can_write_even_if_the_lock_was_held() -> None:
    state = SamplingState(0.5)
    with state._lock:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                done = threading.Event()

                def write() -> None:
                    state.set_rate(0.2)
                    done.set()

                threading.Thread(target=write, daemon=True).start()
                code = 0 if done.wait(2.0) and state.rate == 0.2 else 1
            finally:
                os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert state.rate == 0.5
