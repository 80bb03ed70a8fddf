# SPDX-License-Identifier: Apache-2.0
"""The disk spool on real files: order, atomicity, permissions, limits, leases shared by threads and processes,
and degrading to memory-only without raising."""

from __future__ import annotations

import errno
import logging
import multiprocessing
import os
import pathlib
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from opentelemetry_exporter_lumiqtrace import spool as spool_module
from opentelemetry_exporter_lumiqtrace.spool import (
    DEFAULT_SPOOL_MAX_BYTES,
    DiskSpool,
    SpoolBatch,
)

LOGGER = "opentelemetry_exporter_lumiqtrace.spool"
T0 = 1_760_000_000.0


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def event(n: int) -> bytes:
    """A ten-byte NDJSON line (eleven on disk with its newline)."""
    return b'{"n":%04d}' % n


def open_spool(directory: pathlib.Path, clock: FakeClock | None = None, **kwargs: object) -> DiskSpool:
    spool = DiskSpool.open(directory, clock=clock or FakeClock(), **kwargs)  # type: ignore[arg-type]
    assert spool is not None
    return spool


def our_files(directory: pathlib.Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".ndjson" in p.name)


def claim_all(spool: DiskSpool, max_events: int = 10_000) -> list[bytes]:
    lines: list[bytes] = []
    while (batch := spool.claim(max_events)) is not None:
        lines.extend(batch.lines)
        spool.ack(batch)
    return lines


def spool_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def spool_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "spool"


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        yield caplog


def test_write_claim_ack_round_trip_oldest_first(spool_dir: pathlib.Path, clock: FakeClock) -> None:
    spool = open_spool(spool_dir, clock)
    assert spool.directory == spool_dir
    assert spool.claim(100) is None
    for start in (0, 3, 6):
        assert spool.write([event(n) for n in range(start, start + 3)]) == 3
        clock.now += 1
    assert spool.pending_events() == 9

    batch = spool.claim(100)
    assert isinstance(batch, SpoolBatch)
    assert batch.lines == [event(n) for n in range(9)]
    assert spool.pending_events() == 0
    assert spool.claim(100) is None  # leased files are not handed out twice

    spool.ack(batch)
    assert our_files(spool_dir) == []
    assert spool.claim(100) is None
    assert spool.dropped_events == 0


def test_claim_takes_whole_files_up_to_max_events(spool_dir: pathlib.Path, clock: FakeClock) -> None:
    spool = open_spool(spool_dir, clock)
    for start in (0, 4, 8):
        spool.write([event(n) for n in range(start, start + 4)])
        clock.now += 1
    first = spool.claim(9)
    assert first is not None
    assert first.lines == [event(n) for n in range(8)]
    second = spool.claim(9)
    assert second is not None
    assert second.lines == [event(n) for n in range(8, 12)]


def test_write_splits_into_files_of_max_lines_per_file(spool_dir: pathlib.Path) -> None:
    spool = open_spool(spool_dir, max_lines_per_file=500)
    spool.write([event(n) for n in range(1200)])
    counts = sorted(len(p.read_bytes().splitlines()) for p in spool_dir.iterdir())
    assert counts == [200, 500, 500]
    batch = spool.claim(500)
    assert batch is not None
    assert batch.lines == [event(n) for n in range(500)]


def test_oversized_file_is_split_on_claim_and_keeps_order(spool_dir: pathlib.Path, clock: FakeClock) -> None:
    big = open_spool(spool_dir, clock, max_lines_per_file=1000)
    big.write([event(n) for n in range(10)])
    clock.now += 1
    big.write([event(99)])

    spool = open_spool(spool_dir, clock)
    batch = spool.claim(4)
    assert batch is not None
    assert batch.lines == [event(n) for n in range(4)]
    assert spool.pending_events() == 7
    spool.release(batch)
    assert claim_all(spool) == [*(event(n) for n in range(10)), event(99)]


def test_newlines_inside_a_line_do_not_split_events(spool_dir: pathlib.Path) -> None:
    spool = open_spool(spool_dir)
    spool.write([b'{"a":\n1}', b"", b'{"b":2}'])
    batch = spool.claim(10)
    assert batch is not None
    assert batch.lines == [b'{"a": 1}', b'{"b":2}']


def test_write_is_atomic_temp_then_fsync_then_rename(spool_dir: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = open_spool(spool_dir)
    lines = [event(n) for n in range(50)]
    seen: list[tuple[str, bytes, bool]] = []
    fsynced: list[int] = []
    real_replace, real_fsync = os.replace, os.fsync

    def spy_fsync(fd: int) -> None:
        fsynced.append(fd)
        real_fsync(fd)

    def spy_replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        # At the moment of the rename the full content is already on disk under the temporary name.
        seen.append((pathlib.Path(src).name, pathlib.Path(src).read_bytes(), pathlib.Path(dst).exists()))
        assert fsynced, "rename before fsync"
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", spy_fsync)
    monkeypatch.setattr(os, "replace", spy_replace)
    assert spool.write(lines)
    monkeypatch.undo()

    [(temp_name, content, target_existed)] = seen
    assert temp_name.startswith(".") and temp_name.endswith(".tmp")
    assert content == b"\n".join(lines) + b"\n"
    assert not target_existed
    assert [p.name for p in spool_dir.iterdir() if p.name.endswith(".tmp")] == []


def test_crashed_writer_temp_file_is_ignored_then_cleaned(spool_dir: pathlib.Path, clock: FakeClock) -> None:
    spool = open_spool(spool_dir, clock, lease_timeout_s=60)
    spool.write([event(1)])
    # A writer died mid-write: half a file under the temporary name of a file that claims 500 events.
    temp = spool_dir / f".{int(clock.now * 1e9):020d}-99999-00000000-deadbeef-500.ndjson.tmp"
    temp.write_bytes(b'{"half":')
    assert spool.pending_events() == 1

    batch = spool.claim(1000)
    assert batch is not None
    assert batch.lines == [event(1)]
    spool.ack(batch)
    assert spool.claim(1000) is None
    assert temp.exists()  # another process may still be writing it

    clock.now += 61
    assert spool.claim(1000) is None
    assert not temp.exists()
    assert spool.dropped_events == 0


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
def test_directory_and_file_permissions_are_owner_only(tmp_path: pathlib.Path) -> None:
    old_umask = os.umask(0)  # the modes must not depend on a friendly umask
    try:
        directory = tmp_path / "a" / "b"
        spool = open_spool(directory)
        spool.write([event(1)])
        batch = spool.claim(10)
        assert batch is not None
        spool.release(batch)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o700
    [name] = our_files(directory)
    assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600


def test_existing_directory_permissions_are_left_alone(tmp_path: pathlib.Path) -> None:
    tmp_path.chmod(0o755)
    open_spool(tmp_path)
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755


def test_max_bytes_evicts_oldest_files_and_counts_them(
    spool_dir: pathlib.Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    spool = open_spool(spool_dir, clock, max_bytes=100)  # each event is 11 bytes on disk
    for start in range(0, 8, 2):  # 4 files, 88 bytes
        spool.write([event(start), event(start + 1)])
        clock.now += 1
    assert spool.dropped_events == 0

    assert spool.write([event(8), event(9)])  # 110 bytes: the oldest file goes
    assert spool.dropped_events == 2
    clock.now += 1
    assert spool.write([event(10), event(11), event(12), event(13)])  # 132: two more files go
    assert spool.dropped_events == 6
    assert len(spool_warnings(caplog)) == 1  # once, not per eviction
    assert claim_all(spool) == [event(n) for n in range(6, 14)]


def test_batch_larger_than_max_bytes_keeps_its_newest_lines(spool_dir: pathlib.Path) -> None:
    spool = open_spool(spool_dir, max_bytes=50)
    assert spool.write([event(n) for n in range(10)])
    assert spool.dropped_events == 6
    assert claim_all(spool) == [event(n) for n in range(6, 10)]


def test_claimed_files_are_not_evicted(spool_dir: pathlib.Path, clock: FakeClock) -> None:
    spool = open_spool(spool_dir, clock, max_bytes=50)
    spool.write([event(0), event(1), event(2)])
    batch = spool.claim(10)
    assert batch is not None
    clock.now += 1
    spool.write([event(3), event(4)])  # over the cap only because of the leased file, which is in flight
    spool.ack(batch)
    assert claim_all(spool) == [event(3), event(4)]
    assert spool.dropped_events == 0


def test_expired_files_are_deleted_not_sent(spool_dir: pathlib.Path, clock: FakeClock) -> None:
    spool = open_spool(spool_dir, clock, max_age_s=3600)
    spool.write([event(1), event(2)])
    clock.now += 1800
    spool.write([event(3)])
    clock.now += 1801
    assert spool.pending_events() == 1
    batch = spool.claim(10)
    assert batch is not None
    assert batch.lines == [event(3)]
    assert spool.dropped_events == 2
    assert len(our_files(spool_dir)) == 1  # only the leased one


def test_release_puts_a_batch_back_before_newer_files(spool_dir: pathlib.Path, clock: FakeClock) -> None:
    spool = open_spool(spool_dir, clock)
    spool.write([event(1), event(2)])
    batch = spool.claim(10)
    assert batch is not None
    clock.now += 1
    spool.write([event(3)])
    spool.release(batch)
    spool.release(batch)  # twice is harmless
    assert spool.pending_events() == 3
    again = spool.claim(10)
    assert again is not None
    assert again.lines == [event(1), event(2), event(3)]


def test_two_instances_never_claim_the_same_file(spool_dir: pathlib.Path) -> None:
    first, second = open_spool(spool_dir), open_spool(spool_dir)
    assert first.claim(10) is None
    first.write([event(1)])
    batch = first.claim(10)
    assert batch is not None
    assert second.claim(10) is None  # leased by a live holder
    first.ack(batch)
    second.ack(batch)
    assert our_files(spool_dir) == []


def _claim_loop(spool: DiskSpool, out: list[bytes], start: threading.Barrier) -> None:
    start.wait()
    while (batch := spool.claim(7)) is not None:
        out.extend(batch.lines)
        spool.ack(batch)


def test_threads_with_two_instances_get_every_line_exactly_once(spool_dir: pathlib.Path, clock: FakeClock) -> None:
    writer = open_spool(spool_dir, clock, max_lines_per_file=3)
    everything = [event(n) for n in range(600)]
    writer.write(everything)  # 200 files of 3
    results: list[list[bytes]] = [[], [], [], []]
    start = threading.Barrier(len(results))
    threads = [threading.Thread(target=_claim_loop, args=(open_spool(spool_dir, clock), out, start)) for out in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    merged = [line for out in results for line in out]
    assert sorted(merged) == everything
    assert our_files(spool_dir) == []


def _process_claim_loop(directory: str, out_path: str, start: object) -> None:
    spool = DiskSpool.open(directory)
    assert spool is not None
    start.wait()  # type: ignore[attr-defined]
    with open(out_path, "wb") as out:
        while (batch := spool.claim(7)) is not None:
            out.write(b"".join(line + b"\n" for line in batch.lines))
            spool.ack(batch)


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_two_processes_get_every_line_exactly_once(spool_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    writer = open_spool(spool_dir, FakeClock(time.time()), max_lines_per_file=3)  # children use the real clock
    everything = [event(n) for n in range(900)]
    writer.write(everything)  # 300 files of 3
    ctx = multiprocessing.get_context("fork")
    start = ctx.Barrier(2)
    outs = [tmp_path / "out-0", tmp_path / "out-1"]
    procs = [ctx.Process(target=_process_claim_loop, args=(str(spool_dir), str(out), start)) for out in outs]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=30)
    assert [proc.exitcode for proc in procs] == [0, 0]
    per_process = [out.read_bytes().splitlines() for out in outs]
    assert sorted(per_process[0] + per_process[1]) == everything
    assert our_files(spool_dir) == []


def _lease_by_hand(directory: pathlib.Path, pid: int, claimed_at_ms: int) -> str:
    [name] = our_files(directory)
    claimed = f"{name}.claimed-{pid}-{claimed_at_ms}-0badf00d"
    os.rename(directory / name, directory / claimed)
    return claimed


@pytest.mark.skipif(os.name == "nt", reason="pid probing is POSIX-only; Windows relies on the lease timeout")
def test_lease_of_a_dead_process_is_reclaimed(spool_dir: pathlib.Path, clock: FakeClock) -> None:
    spool = open_spool(spool_dir, clock)
    spool.write([event(1)])
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    _lease_by_hand(spool_dir, int(dead.stdout), int(clock.now * 1000))
    batch = spool.claim(10)
    assert batch is not None
    assert batch.lines == [event(1)]


def test_lease_of_an_earlier_process_with_our_pid_is_reclaimed(spool_dir: pathlib.Path, clock: FakeClock) -> None:
    # Containers restart as pid 1: a lease naming our pid that this process never took is a leftover.
    spool = open_spool(spool_dir, clock)
    spool.write([event(1)])
    _lease_by_hand(spool_dir, os.getpid(), int(clock.now * 1000))
    batch = spool.claim(10)
    assert batch is not None
    assert batch.lines == [event(1)]


def test_lease_of_a_live_process_is_kept_until_the_lease_timeout(spool_dir: pathlib.Path, clock: FakeClock) -> None:
    spool = open_spool(spool_dir, clock, lease_timeout_s=600)
    spool.write([event(1)])
    _lease_by_hand(spool_dir, os.getppid(), int(clock.now * 1000))
    assert spool.claim(10) is None
    assert spool.pending_events() == 0
    clock.now += 601
    batch = spool.claim(10)
    assert batch is not None
    assert batch.lines == [event(1)]


def test_own_lease_times_out_for_other_instances_and_late_ack_is_harmless(
    spool_dir: pathlib.Path, clock: FakeClock
) -> None:
    slow, other = open_spool(spool_dir, clock, lease_timeout_s=60), open_spool(spool_dir, clock, lease_timeout_s=60)
    slow.write([event(1)])
    hung = slow.claim(10)
    assert hung is not None
    assert other.claim(10) is None
    clock.now += 61
    taken = other.claim(10)
    assert taken is not None
    assert taken.lines == [event(1)]
    slow.ack(hung)  # its file was taken back meanwhile: nothing to delete, no exception
    other.ack(taken)
    assert our_files(spool_dir) == []


def test_corrupt_files_are_deleted_with_a_debug_line(
    spool_dir: pathlib.Path, clock: FakeClock, debug_logs: pytest.LogCaptureFixture
) -> None:
    spool = open_spool(spool_dir, clock)
    spool.write([event(1), event(2)])
    clock.now += 1
    spool.write([event(3)])
    oldest = spool_dir / our_files(spool_dir)[0]
    oldest.write_bytes(event(1) + b"\n")  # truncated: its name says two events
    batch = spool.claim(10)
    assert batch is not None
    assert batch.lines == [event(3)]
    assert not oldest.exists()
    assert spool.dropped_events == 2
    assert any("corrupt" in r.getMessage() and r.levelno == logging.DEBUG for r in debug_logs.records)
    assert spool_warnings(debug_logs) == []


def test_files_not_named_like_ours_are_never_touched(spool_dir: pathlib.Path, clock: FakeClock) -> None:
    spool_dir.mkdir()
    foreign = [spool_dir / "notes.txt", spool_dir / "0001.ndjson", spool_dir / ".hidden.tmp"]
    for path in foreign:
        path.write_bytes(b"keep me\n")
    spool = open_spool(spool_dir, clock, max_bytes=20, max_age_s=1, lease_timeout_s=1)
    spool.write([event(1)])
    clock.now += 10
    assert spool.claim(10) is None
    assert all(path.read_bytes() == b"keep me\n" for path in foreign)


def test_partition_keeps_projects_apart_without_writing_the_key(tmp_path: pathlib.Path) -> None:
    a = open_spool(tmp_path, partition="https://api\nlqt_key_a")
    b = open_spool(tmp_path, partition="https://api\nlqt_key_b")
    assert a.directory.parent == tmp_path
    assert a.directory != b.directory
    assert "lqt_key" not in str(a.directory)
    a.write([event(1)])
    assert b.claim(10) is None
    assert a.pending_events() == 1


def test_unusable_directory_returns_none_with_one_warning(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    regular = tmp_path / "file"
    regular.write_bytes(b"")
    assert DiskSpool.open(regular) is None
    assert DiskSpool.open(regular / "below") is None
    warnings = spool_warnings(caplog)
    assert len(warnings) == 2
    assert all(str(regular) in message and "memory only" in message for message in warnings)


def test_read_only_directory_returns_none_with_one_warning(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "ro"
    directory.mkdir()
    directory.chmod(0o500)
    try:
        (directory / "probe").touch()
    except PermissionError:
        pass  # the mode is enforced: the real case
    else:
        # Root ignores modes: provoke what a read-only mount does instead.
        (directory / "probe").unlink()
        real_open = os.open

        def read_only_open(path: str | os.PathLike[str], flags: int, *args: int, **kwargs: int) -> int:
            if flags & os.O_CREAT and pathlib.Path(path).parent == directory:
                raise OSError(errno.EROFS, "Read-only file system", str(path))
            return real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", read_only_open)
    try:
        assert DiskSpool.open(directory) is None
    finally:
        monkeypatch.undo()
        directory.chmod(0o700)
    assert len(spool_warnings(caplog)) == 1


def test_disk_full_degrades_to_memory_only_with_one_warning(
    spool_dir: pathlib.Path, clock: FakeClock, debug_logs: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = open_spool(spool_dir, clock)
    assert spool.write([event(1)])
    clock.now += 1

    def disk_full(*args: object, **kwargs: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", disk_full)
    assert spool.write([event(2)]) == 0
    monkeypatch.undo()
    assert spool.write([event(3)]) == 0  # writing stays off, even though the disk has room again
    assert spool.writable is False

    warnings = spool_warnings(debug_logs)
    assert len(warnings) == 1
    assert "disk full" in warnings[0]
    assert [n for n in os.listdir(spool_dir) if n.endswith(".tmp")] == []
    assert claim_all(spool) == [event(1)]  # what was spooled before still drains


def test_write_failure_at_rename_leaves_no_file(spool_dir: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = open_spool(spool_dir)

    def failing_replace(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "replace", failing_replace)
    assert spool.write([event(1)]) == 0
    monkeypatch.undo()
    assert os.listdir(spool_dir) == []


def test_bad_numbers_fall_back_to_defaults(spool_dir: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = open_spool(spool_dir, max_bytes=0, max_age_s=-1)
    assert spool.max_bytes == DEFAULT_SPOOL_MAX_BYTES
    assert spool.max_age_s == spool_module.DEFAULT_SPOOL_MAX_AGE_S
    assert len(spool_warnings(caplog)) == 2


def test_a_failing_directory_never_raises(spool_dir: pathlib.Path) -> None:
    spool = open_spool(spool_dir)
    spool.write([event(1)])
    batch = spool.claim(10)
    assert batch is not None
    spool_dir.joinpath(our_files(spool_dir)[0]).unlink()
    spool_dir.rmdir()
    assert spool.claim(10) is None
    assert spool.pending_events() == 0
    spool.release(batch)
    spool.ack(batch)
    assert spool.write([event(2)]) == 0
