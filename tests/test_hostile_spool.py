# SPDX-License-Identifier: Apache-2.0
"""The disk spool trusts nothing it did not write (issue 13 items 4, 7, 9 and 14), on real files.

FIFOs, symlinks, hard links and oversized files named like spool files; symlinked, shared and foreign directories;
drains against a flapping server; losses and partial writes in ``stats()``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import pathlib
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from typing import Any

import pytest

from opentelemetry_exporter_lumiqtrace.spool import DiskSpool
from opentelemetry_exporter_lumiqtrace.testing import LocalIngestServer, Reply

from .conftest import make_spans, recovered_server

pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX files: FIFOs, symlinks, modes and owners")

LOGGER = "opentelemetry_exporter_lumiqtrace.spool"
T0 = 1_760_000_000.0
# A file name the spool takes for its own: timestamp, pid, sequence, random bits, event count.
OURS = "{ts:020d}-4242-00000001-deadbeef-{count}.ndjson"


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def ours(count: int = 1, ts: float = T0 - 60) -> str:
    return OURS.format(ts=int(ts * 1e9), count=count)


def event(n: int) -> bytes:
    return b'{"n":%04d}' % n


def open_spool(directory: pathlib.Path, **kwargs: Any) -> DiskSpool:
    kwargs.setdefault("clock", FakeClock())
    spool = DiskSpool.open(directory, **kwargs)
    assert spool is not None
    return spool


def claim_in_thread(spool: DiskSpool, budget_s: float = 5.0) -> tuple[bool, Any]:
    """Claim in a daemon thread; (finished within the budget, the batch)."""
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(spool.claim(100)), daemon=True)
    thread.start()
    thread.join(budget_s)
    return not thread.is_alive(), out[0] if out else None


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]


# -- files named like ours that we did not write -------------------------------------------------------------------


def test_a_fifo_named_like_a_spool_file_neither_blocks_nor_is_touched(tmp_path: pathlib.Path) -> None:
    spool = open_spool(tmp_path / "spool")
    fifo = spool.directory / ours()
    os.mkfifo(fifo, 0o600)
    spool.write([event(1)])
    try:
        finished, batch = claim_in_thread(spool)
        assert finished, "claim() blocked on a FIFO"
        assert batch is not None and batch.lines == [event(1)]  # our own file still drains
        spool.ack(batch)
        assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
        assert spool.ignored_files() == {"not_regular": 1}
        # Seen again on every scan, counted once.
        assert spool.claim(100) is None
        assert spool.ignored_files() == {"not_regular": 1}
    finally:
        # Unblock a reader stuck on the FIFO (only on code that opened it), whatever name it carries now.
        for name in os.listdir(spool.directory):
            if stat.S_ISFIFO(os.lstat(spool.directory / name).st_mode):
                with contextlib.suppress(OSError):
                    os.close(os.open(spool.directory / name, os.O_WRONLY | os.O_NONBLOCK))


def test_a_symlink_to_a_secret_named_like_a_spool_file_is_never_read(tmp_path: pathlib.Path) -> None:
    secret = tmp_path / "secrets.json"
    secret.write_bytes(b'{"password":"hunter2"}\n')
    secret.chmod(0o600)
    spool = open_spool(tmp_path / "spool")
    link = spool.directory / ours()
    link.symlink_to(secret)

    assert spool.pending_events() == 0
    assert spool.claim(100) is None
    assert spool.ignored_files() == {"symlink": 1}
    assert link.is_symlink() and secret.read_bytes() == b'{"password":"hunter2"}\n'


def test_a_hard_link_to_a_secret_named_like_a_spool_file_is_never_read(tmp_path: pathlib.Path) -> None:
    spool = open_spool(tmp_path / "spool")
    secret = spool.directory.parent / "secrets.json"
    secret.write_bytes(b'{"password":"hunter2"}\n')
    os.link(secret, spool.directory / ours())
    assert spool.claim(100) is None
    assert spool.ignored_files() == {"linked": 1}
    assert secret.read_bytes() == b'{"password":"hunter2"}\n'


def test_a_symlink_to_dev_zero_is_not_read(tmp_path: pathlib.Path) -> None:
    # In a child with a 1 GiB address-space limit: code that follows the link reads until MemoryError.
    code = textwrap.dedent(
        """
        import json, logging, os, resource, sys, time, tracemalloc
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        logging.basicConfig(level=logging.DEBUG)  # claim() swallows what goes wrong, with a DEBUG line
        from opentelemetry_exporter_lumiqtrace.spool import DiskSpool
        spool = DiskSpool.open(sys.argv[1])
        os.symlink("/dev/zero", os.path.join(spool.directory, sys.argv[2]))
        tracemalloc.start()
        started = time.monotonic()
        batch = spool.claim(100)
        print(json.dumps({
            "batch": batch is not None,
            "seconds": time.monotonic() - started,
            "peak_bytes": tracemalloc.get_traced_memory()[1],
            "ignored": getattr(spool, "ignored_files", lambda: None)(),
        }))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "spool"), ours(ts=time.time() - 60)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert "MemoryError" not in done.stderr
    assert result["peak_bytes"] < 16 * 1024 * 1024
    assert result["seconds"] < 2.0
    assert result["batch"] is False
    assert result["ignored"] == {"symlink": 1}


def test_an_oversized_file_is_not_read_and_is_counted_once(tmp_path: pathlib.Path) -> None:
    # The spool never writes a file bigger than its byte cap; one that is (a 300 MB one-line file, scaled down) is
    # set aside unread instead of being read again on every export.
    spool = open_spool(tmp_path / "spool", max_bytes=64 * 1024)
    big = spool.directory / ours(count=1)
    big.write_bytes(b'{"pad":"' + b"x" * (1024 * 1024) + b'"}\n')

    assert spool.claim(100) is None
    assert not any(p.name.endswith(".ndjson") for p in spool.directory.iterdir())
    assert spool.dropped_by_reason() == {"oversized": 1}
    spool.write([event(1)])
    batch = spool.claim(100)
    assert batch is not None and batch.lines == [event(1)]
    assert spool.dropped_by_reason() == {"oversized": 1}


# -- directories we did not make safe ------------------------------------------------------------------------------


def test_a_symlink_at_the_spool_path_is_refused_with_one_warning(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    real = tmp_path / "elsewhere"
    real.mkdir(mode=0o700)
    (tmp_path / "spool").symlink_to(real)
    assert DiskSpool.open(tmp_path / "spool") is None
    assert len(warnings_of(caplog)) == 1
    assert "symlink" in warnings_of(caplog)[0]
    assert list(real.iterdir()) == []


def test_a_symlinked_partition_directory_is_refused(tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "spool"
    root.mkdir(mode=0o700)
    partition = "http://127.0.0.1:1\nlqt_key"
    victim = tmp_path / "victim"
    victim.mkdir(mode=0o700)
    (root / hashlib.sha256(partition.encode()).hexdigest()[:16]).symlink_to(victim)
    assert DiskSpool.open(root, partition=partition) is None
    assert len(warnings_of(caplog)) == 1
    assert list(victim.iterdir()) == []


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o702, 0o1777])
def test_a_group_or_world_writable_directory_is_refused(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture, mode: int
) -> None:
    shared = tmp_path / "spool"
    shared.mkdir()
    shared.chmod(mode)
    assert DiskSpool.open(shared) is None
    (warning,) = warnings_of(caplog)
    assert "writable" in warning and str(shared) in warning


def test_a_partition_inside_a_world_writable_directory_is_refused(tmp_path: pathlib.Path) -> None:
    shared = tmp_path / "spool"
    shared.mkdir()
    shared.chmod(0o777)
    assert DiskSpool.open(shared, partition="p") is None


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown")
def test_a_directory_owned_by_another_user_is_refused(tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    foreign = tmp_path / "spool"
    foreign.mkdir(mode=0o700)
    os.chown(foreign, 65534, 65534)
    assert DiskSpool.open(foreign) is None
    (warning,) = warnings_of(caplog)
    assert "owned by uid 65534" in warning


def test_directories_the_spool_creates_are_private_and_accepted(tmp_path: pathlib.Path) -> None:
    old = os.umask(0)
    try:
        spool = open_spool(tmp_path / "a" / "b", partition="p")
    finally:
        os.umask(old)
    assert stat.S_IMODE(spool.directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(spool.directory.parent.stat().st_mode) == 0o700


# -- partial release, partial write ---------------------------------------------------------------------------------


def test_release_puts_back_only_what_was_not_delivered(tmp_path: pathlib.Path) -> None:
    clock = FakeClock()
    spool = open_spool(tmp_path / "spool", clock=clock)
    for start in (0, 4, 8):
        spool.write([event(n) for n in range(start, start + 4)])
        clock.now += 1
    batch = spool.claim(100)
    assert batch is not None and len(batch) == 12
    # Delivered: 0-5 and 8; not delivered: 6, 7 and 9-11 (a failed slice in the middle, concurrent slices).
    undelivered = [event(n) for n in (6, 7, 9, 10, 11)]
    spool.release(batch, undelivered=undelivered)
    again = spool.claim(100)
    assert again is not None and again.lines == undelivered
    spool.release(again)  # nothing said: all of it goes back
    last = spool.claim(100)
    assert last is not None and last.lines == undelivered


def test_a_write_that_fails_halfway_reports_what_reached_disk(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = open_spool(tmp_path / "spool", max_lines_per_file=4)
    real_replace = os.replace
    calls = []

    def replace_then_fail(src: Any, dst: Any) -> None:
        calls.append(dst)
        if len(calls) >= 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_then_fail)
    assert spool.write([event(n) for n in range(10)]) == 4
    monkeypatch.undo()
    assert spool.pending_events() == 4
    batch = spool.claim(100)
    assert batch is not None and batch.lines == [event(n) for n in range(4)]


# -- the exporter: drain and accounting -----------------------------------------------------------------------------


def _partition_dir(root: pathlib.Path, server: LocalIngestServer) -> pathlib.Path:
    return root / hashlib.sha256(f"{server.base_url}\n{server.api_key}".encode()).hexdigest()[:16]


def test_draining_against_a_flapping_server_resends_only_the_undelivered_tail(
    server: LocalIngestServer, exporter_factory: Any, tmp_path: pathlib.Path
) -> None:
    spool_dir = tmp_path / "spool"
    server.set_outage(True)
    first = exporter_factory(timeout=0.2, spool_dir=spool_dir)
    first.export(make_spans(250, traces=25))
    first.shutdown(timeout_millis=200)
    assert first.stats()["spooled"] == 250
    server.set_outage(False)

    # Two slices of the drain (100, 100, 50 events) go through, the third meets a failing server until the
    # deadline. The slices travel concurrently, so which two get the 200s is a race: 200 or 150 events go.
    server.script(Reply(200), Reply(200), *[Reply(503)] * 500)
    second = exporter_factory(timeout=0.3, spool_dir=spool_dir)
    second.force_flush(timeout_millis=300)
    delivered = [e["span_id"] for e in server.events()]
    assert len(delivered) in (150, 200)
    unspooled_by_first_drain = second.stats()["unspooled"]

    with recovered_server(server) as fresh:
        assert second.force_flush(timeout_millis=2000)
        resent = Counter(e["span_id"] for e in fresh.events())
        sent_events = sum(len(r.events or []) for r in fresh.ingest_requests())
    assert sent_events == 250 - len(delivered)  # only the rest: nothing delivered is sent again
    assert set(resent.values()) == {1}
    assert not set(resent) & set(delivered)
    assert unspooled_by_first_drain == len(delivered)
    assert second.stats()["unspooled"] == 250
    assert second.stats()["spool_pending"] == 0


def test_spool_losses_are_in_stats_by_reason(
    server: LocalIngestServer, exporter_factory: Any, tmp_path: pathlib.Path
) -> None:
    spool_dir = tmp_path / "spool"
    exporter = exporter_factory(spool_dir=spool_dir)
    partition = _partition_dir(spool_dir, server)
    assert partition.is_dir()
    (partition / ours(count=5, ts=1_000_000_000.0)).write_bytes(b"{}\n" * 5)  # written in 2001: expired
    (partition / ours(count=3, ts=time.time() - 60)).write_bytes(b"{}\n")  # says 3 events, holds 1: corrupt
    (partition / ours(count=2, ts=time.time() - 30)).symlink_to(tmp_path)

    assert exporter.force_flush(timeout_millis=2000)
    stats = exporter.stats()
    assert stats["spool_dropped"] == {"expired": 5, "corrupt": 3}
    assert stats["spool_ignored_files"] == {"symlink": 1}
    assert server.events() == []


def test_spool_cap_losses_are_counted_and_every_event_is_accounted_for(
    server: LocalIngestServer, exporter_factory: Any, tmp_path: pathlib.Path
) -> None:
    server.set_outage(True)
    exporter = exporter_factory(timeout=0.1, buffer_max_events=10, spool_dir=tmp_path, spool_max_bytes=4096)
    exporter.export(make_spans(100, traces=10))
    stats = exporter.stats()
    assert stats["spooled"] == 90
    assert stats["spool_dropped"]["full"] > 0
    assert stats["spooled"] == stats["spool_pending"] + stats["spool_dropped"]["full"]
    assert stats["buffered"] == 10


def test_a_shutdown_write_that_fails_halfway_counts_what_reached_disk(
    server: LocalIngestServer, exporter_factory: Any, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.set_outage(True)
    exporter = exporter_factory(timeout=0.2, spool_dir=tmp_path)
    exporter.export(make_spans(1200, traces=100))
    assert exporter.stats()["buffered"] == 1200
    real_replace = os.replace
    renamed = []

    def replace_then_fail(src: Any, dst: Any) -> None:
        renamed.append(dst)
        if len(renamed) >= 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_then_fail)
    exporter.shutdown(timeout_millis=200)
    monkeypatch.undo()
    stats = exporter.stats()
    assert stats["spool_pending"] == 500  # the first file of 500 events reached the disk
    assert stats["spooled"] == 500
    assert stats["dropped"].get("shutdown") == 700
