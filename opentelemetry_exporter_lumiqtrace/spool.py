# SPDX-License-Identifier: Apache-2.0
"""Optional disk spool: encoded events that could not be delivered survive a restart.

Off unless a directory is configured. Events that overflow the in-memory retry buffer, or are still undelivered at
shutdown, are written here as NDJSON files; a later process using the same directory sends them, oldest first, a
bounded batch at a time. The design follows Azure Monitor's local storage and avoids its known failures
(spec/exporter-anchors.md §4 and §6 row 15):

- one file per write, created under a temporary name, fsynced, then renamed: a reader never sees half a file;
- file names start with a zero-padded nanosecond timestamp (so sorting by name is oldest first), then the pid, a
  process-wide sequence number and random bits (so processes sharing a directory never collide), then the number
  of events in the file (so counting and eviction never read file contents);
- a file is leased by renaming it to ``<name>.claimed-<pid>-<claimed at, ms>-<token>``. Rename is atomic, so of two
  processes racing for one file exactly one wins; the other gets ``FileNotFoundError`` and moves on. Leases of dead
  processes, of an earlier process with our pid (containers restart as pid 1), or older than the lease timeout are
  put back;
- a byte cap (the oldest files go first, counted in ``dropped_events``), a retention period, and no per-file
  logging above DEBUG (Azure #39104: a spool that logs per item into an exporting pipeline floods itself);
- a write failure (disk full, read-only filesystem) logs one warning and turns writing off: the exporter keeps
  working from memory. Nothing here raises.

It trusts nothing it did not write (issue 13): the directory and its partition are created 0700 and refused (one
warning, memory-only) when they are symlinks, group- or world-writable, or owned by another user; a file named like
ours is read only when it is a regular file with one link, owned by us, not bigger than the byte cap, opened without
following symlinks and without blocking. Anything else is ignored and counted (``ignored_files``), never read, so a
FIFO cannot block an export, a symlink cannot post ``/dev/zero`` or a secrets file to ingest, and an oversized file is
set aside once instead of being read on every export. Losses are counted by reason (``dropped_by_reason``).

Files not named like ours are never touched, so a directory shared with other content is safe.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import logging
import os
import pathlib
import re
import secrets
import stat
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from opentelemetry_exporter_lumiqtrace import _config, _fork

_logger = logging.getLogger(__name__)

DEFAULT_SPOOL_MAX_BYTES = _config.DEFAULT_SPOOL_MAX_BYTES
DEFAULT_SPOOL_MAX_AGE_S = _config.DEFAULT_SPOOL_MAX_AGE_S
DEFAULT_SPOOL_LEASE_TIMEOUT_S = _config.DEFAULT_SPOOL_LEASE_TIMEOUT_S
DEFAULT_SPOOL_LINES_PER_FILE = _config.DEFAULT_SPOOL_LINES_PER_FILE

# Why spooled events were lost (the keys of ``DiskSpool.dropped_by_reason()``).
SPOOL_DROP_FULL = "full"  # evicted, oldest first, to stay under the byte cap
SPOOL_DROP_EXPIRED = "expired"  # older than the retention period
SPOOL_DROP_CORRUPT = "corrupt"  # unreadable, or not the number of lines its name says
SPOOL_DROP_OVERSIZED = "oversized"  # bigger than the byte cap: not written by us, deleted unread
# Why a file named like ours was ignored (the keys of ``DiskSpool.ignored_files()``); it is never read nor changed.
IGNORED_SYMLINK = "symlink"
IGNORED_NOT_REGULAR = "not_regular"  # a FIFO, socket, device or directory
IGNORED_LINKED = "linked"  # a hard link: its other name may be anybody's file
IGNORED_FOREIGN = "foreign_owner"
# Names of ignored files remembered so each is counted once, however many scans see it.
_MAX_IGNORED_NAMES = 4096
# Open flags for reading a leased file: never follow a symlink, never block on a FIFO.
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)

_SUFFIX = ".ndjson"
_BASE = r"(?P<ts>\d{20})-(?P<pid>\d+)-(?P<seq>\d{8,})-(?P<rand>[0-9a-f]{8})-(?P<count>\d+)\.ndjson"
_BASE_RE = re.compile(_BASE + r"\Z")
_CLAIMED_RE = re.compile(_BASE + r"\.claimed-(?P<cpid>\d+)-(?P<cms>\d+)-(?P<token>[0-9a-f]+)\Z")
_TEMP_RE = re.compile(r"\." + _BASE + r"\.tmp\Z")

_sequence = itertools.count()
_sequence_lock = threading.Lock()
# Names of lease files this process holds, across all DiskSpool instances: a lease carrying our pid but missing
# here was taken by an earlier process that had the same pid.
_active_claims: set[str] = set()
_claims_lock = threading.Lock()
_instances: weakref.WeakSet[DiskSpool] = weakref.WeakSet()


def _next_sequence() -> int:
    with _sequence_lock:
        return next(_sequence)


def _after_fork_in_child() -> None:
    # A lock held by another thread at fork time would stay locked forever in the child.
    global _sequence_lock, _claims_lock
    _sequence_lock = threading.Lock()
    _claims_lock = threading.Lock()
    # The parent's leases stay the parent's (its pid is in their names); the child holds none.
    _active_claims.clear()
    for spool in list(_instances):
        spool._lock = threading.Lock()


_fork.after_fork_in_child(_after_fork_in_child)


def _unsafe_reason(st: os.stat_result) -> str | None:
    """Why a file named like ours must not be read, from its own (not followed) status; None when it is safe."""
    if stat.S_ISLNK(st.st_mode):
        return IGNORED_SYMLINK
    if not stat.S_ISREG(st.st_mode):
        return IGNORED_NOT_REGULAR
    if st.st_nlink > 1:
        return IGNORED_LINKED
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        return IGNORED_FOREIGN
    return None


def _pid_alive(pid: int) -> bool:
    if os.name == "nt":
        # os.kill on Windows terminates the process instead of probing it: rely on the lease timeout there.
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # EPERM: it exists, owned by someone else
    return True


def _fsync_directory(directory: pathlib.Path) -> None:
    # Makes the rename itself durable; not possible (nor needed) everywhere, so failures are ignored.
    if os.name == "nt":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class _File:
    name: str
    ts_ns: int
    count: int
    size: int


@dataclass
class _Lease:
    path: pathlib.Path
    base: str  # the unclaimed name to go back to on release
    count: int
    lines: list[bytes] = field(default_factory=list, repr=False)


@dataclass
class SpoolBatch:
    """Events claimed from the spool, oldest first. Hand back with ``DiskSpool.ack`` or ``DiskSpool.release``."""

    lines: list[bytes]
    _leases: list[_Lease] = field(default_factory=list, repr=False)
    _done: bool = field(default=False, repr=False)

    def __len__(self) -> int:
        return len(self.lines)


class DiskSpool:
    """A directory of NDJSON files shared safely by threads and processes. Build it with ``DiskSpool.open``."""

    def __init__(
        self,
        directory: pathlib.Path,
        *,
        max_bytes: int = DEFAULT_SPOOL_MAX_BYTES,
        max_age_s: float = DEFAULT_SPOOL_MAX_AGE_S,
        clock: Callable[[], float] = time.time,
        lease_timeout_s: float = DEFAULT_SPOOL_LEASE_TIMEOUT_S,
        max_lines_per_file: int = DEFAULT_SPOOL_LINES_PER_FILE,
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.lease_timeout_s = lease_timeout_s
        self.max_lines_per_file = max_lines_per_file
        self._clock = clock
        self._lock = threading.Lock()
        self._dropped: dict[str, int] = {}
        self._ignored: dict[str, int] = {}
        self._ignored_names: dict[str, None] = {}  # an ordered set, oldest forgotten first
        self._writes_disabled = False
        self._warned_full = False
        _instances.add(self)

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        *,
        max_bytes: int = DEFAULT_SPOOL_MAX_BYTES,
        max_age_s: float = DEFAULT_SPOOL_MAX_AGE_S,
        clock: Callable[[], float] = time.time,
        lease_timeout_s: float = DEFAULT_SPOOL_LEASE_TIMEOUT_S,
        max_lines_per_file: int = DEFAULT_SPOOL_LINES_PER_FILE,
        partition: str | None = None,
    ) -> DiskSpool | None:
        """Open (creating it with mode 0o700 if missing) a spool directory, or return None if it is unusable.

        ``partition``, when given, selects a subdirectory named after its SHA-256: pass what must not mix (the
        endpoint and API key) so spooled events are never sent to another project, without writing the key to disk.
        The directory and the partition are refused (one warning, None) when either is a symlink, group- or
        world-writable, or owned by another user. Bad numbers log a warning and fall back to the defaults.
        Never raises.
        """
        path = pathlib.Path(directory)
        try:
            path = path.expanduser().absolute()
            _make_private_directory(path)
            if partition is not None:
                path = path / hashlib.sha256(partition.encode("utf-8")).hexdigest()[:16]
                _make_private_directory(path)
            _probe_writable(path)
        except (OSError, RuntimeError, ValueError) as exc:
            _logger.warning(
                "LumiqTrace disk spool disabled: cannot use %s (%s); undelivered events are kept in memory only",
                path,
                exc,
            )
            return None
        return cls(
            path,
            max_bytes=int(_positive("max_bytes", max_bytes, DEFAULT_SPOOL_MAX_BYTES)),
            max_age_s=_positive("max_age_s", max_age_s, DEFAULT_SPOOL_MAX_AGE_S),
            clock=clock,
            lease_timeout_s=_positive("lease_timeout_s", lease_timeout_s, DEFAULT_SPOOL_LEASE_TIMEOUT_S),
            max_lines_per_file=int(_positive("max_lines_per_file", max_lines_per_file, DEFAULT_SPOOL_LINES_PER_FILE)),
        )

    @property
    def dropped_events(self) -> int:
        """Events this instance accepted and later discarded undelivered: evicted, expired, corrupt, oversized."""
        with self._lock:
            return sum(self._dropped.values())

    def dropped_by_reason(self) -> dict[str, int]:
        """Events this instance discarded from the directory, by reason (``full``, ``expired``, ``corrupt``,
        ``oversized``). Counts what the file names say, without reading the files."""
        with self._lock:
            return dict(self._dropped)

    def ignored_files(self) -> dict[str, int]:
        """Files named like spool files that this instance refused to read, by reason (``symlink``,
        ``not_regular``, ``linked``, ``foreign_owner``); each counted once."""
        with self._lock:
            return dict(self._ignored)

    @property
    def writable(self) -> bool:
        """False once a write failed; claiming and acknowledging still work."""
        return not self._writes_disabled

    # -- writing -------------------------------------------------------------------------------------------------

    def write(self, lines: Sequence[bytes]) -> int:
        """Persist ``lines`` (oldest first), evicting the oldest spooled files beyond ``max_bytes``.

        Returns how many of ``lines``, from the oldest, the spool took: written to disk, or (when the lines alone
        exceed ``max_bytes``) dropped by the cap and counted as ``full``. The caller still owns ``lines[n:]``: all
        of them when writing is off, the newest ones when a write fails halfway (files already renamed into place
        stay, and are counted as taken).
        """
        if self._writes_disabled:
            _logger.debug("LumiqTrace disk spool: writes are off, %d events not spooled", len(lines))
            return 0
        taken = [0]
        try:
            self._write(lines, taken)
        except Exception as exc:  # the spool must never break an export; any failure means memory-only from now
            self._disable_writes(exc)
        return taken[0]

    def _write(self, lines: Sequence[bytes], taken: list[int]) -> None:
        """Write ``lines``; ``taken[0]`` always says how many of them (from the oldest) are on disk or accounted."""
        # Blank lines are nothing to keep. A raw newline only ever sits between JSON tokens (inside a string it must
        # be escaped), where a space means the same: replacing it keeps one event per line and valid JSON valid.
        positions = [i for i, line in enumerate(lines) if line.strip()]
        if not positions:
            taken[0] = len(lines)
            return
        sizes = [len(lines[i]) + 1 for i in positions]
        new_bytes = sum(sizes)
        trimmed = 0
        while trimmed < len(sizes) and new_bytes > self.max_bytes:
            new_bytes -= sizes[trimmed]
            trimmed += 1
        if trimmed:
            self._count_dropped(SPOOL_DROP_FULL, trimmed)
            self._warn_full(trimmed)
            positions = positions[trimmed:]
        if not positions:
            taken[0] = len(lines)
            return
        taken[0] = positions[0]
        self._make_room(new_bytes)
        ts_ns = int(self._clock() * 1e9)
        step = self.max_lines_per_file
        for start in range(0, len(positions), step):
            chunk = positions[start : start + step]
            self._write_file(self._new_name(ts_ns, len(chunk)), [lines[i].replace(b"\n", b" ") for i in chunk])
            taken[0] = chunk[-1] + 1
        taken[0] = len(lines)
        _fsync_directory(self.directory)

    def _new_name(self, ts_ns: int, count: int) -> str:
        return f"{max(ts_ns, 0):020d}-{os.getpid()}-{_next_sequence():08d}-{secrets.token_hex(4)}-{count}{_SUFFIX}"

    def _write_file(self, name: str, lines: Sequence[bytes], *, final: str | None = None) -> None:
        """Write ``lines`` under a temporary name, fsync, then rename to ``final`` (default: ``name``)."""
        temp = self.directory / f".{name}.tmp"
        data = b"\n".join(lines) + b"\n"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
        fd = os.open(temp, flags, 0o600)
        try:
            try:
                if hasattr(os, "fchmod"):
                    os.fchmod(fd, 0o600)  # the umask can only narrow the mode, but be exact
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, self.directory / (final or name))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    def _make_room(self, new_bytes: int) -> None:
        """Delete the oldest unclaimed files until ``new_bytes`` more fit under ``max_bytes`` (approximately:
        other processes write concurrently)."""
        files, used = self._scan(maintain=True)
        for entry in files:
            if used + new_bytes <= self.max_bytes:
                break
            if self._delete(entry.name):
                used -= entry.size
                self._count_dropped(SPOOL_DROP_FULL, entry.count)
                self._warn_full(entry.count)

    def _warn_full(self, count: int) -> None:
        if self._warned_full:
            _logger.debug("LumiqTrace disk spool full: dropped %d oldest events", count)
            return
        self._warned_full = True
        _logger.warning(
            "LumiqTrace disk spool %s reached its limit of %d bytes: dropping the oldest events (%d so far)",
            self.directory,
            self.max_bytes,
            count,
        )

    def _disable_writes(self, exc: BaseException) -> None:
        with self._lock:
            first = not self._writes_disabled
            self._writes_disabled = True
        reason = "disk full" if getattr(exc, "errno", None) == errno.ENOSPC else str(exc)
        if first:
            _logger.warning(
                "LumiqTrace disk spool %s cannot be written (%s): undelivered events are kept in memory only from now",
                self.directory,
                reason,
            )
        else:
            _logger.debug("LumiqTrace disk spool write failed again: %s", reason)

    # -- reading -------------------------------------------------------------------------------------------------

    def claim(self, max_events: int) -> SpoolBatch | None:
        """Lease the oldest waiting file(s), up to ``max_events`` events; None when nothing is waiting.

        Expired files are deleted instead, corrupt ones too (DEBUG). A file bigger than ``max_events`` (written with
        a larger ``max_lines_per_file``) is split so the batch stays within ``max_events``.
        """
        max_events = max(1, int(max_events))
        try:
            return self._claim(max_events)
        except Exception:
            _logger.debug("LumiqTrace disk spool: claim failed", exc_info=True)
            return None

    def _claim(self, max_events: int) -> SpoolBatch | None:
        files, _ = self._scan(maintain=True)
        batch = SpoolBatch(lines=[])
        for entry in files:
            if batch.lines and len(batch.lines) + entry.count > max_events:
                break
            lease = self._take(entry.name, entry.count)
            if lease is None:
                continue  # another process or thread won it
            lines = self._read(lease)
            if lines is None:
                continue
            if len(lines) > max_events - len(batch.lines):
                lease, lines = self._split(lease, lines, max_events - len(batch.lines))
            lease.lines = lines
            batch.lines.extend(lines)
            batch._leases.append(lease)
            if len(batch.lines) >= max_events:
                break
        return batch if batch.lines else None

    def _take(self, name: str, count: int) -> _Lease | None:
        token = f"{os.getpid()}-{int(self._clock() * 1000)}-{secrets.token_hex(4)}"
        claimed = self.directory / f"{name}.claimed-{token}"
        with _claims_lock:
            _active_claims.add(claimed.name)
        try:
            os.rename(self.directory / name, claimed)
        except OSError as exc:
            with _claims_lock:
                _active_claims.discard(claimed.name)
            if not isinstance(exc, (FileNotFoundError, PermissionError)):
                _logger.debug("LumiqTrace disk spool: cannot lease %s: %s", name, exc)
            return None
        return _Lease(path=claimed, base=name, count=count)

    def _read(self, lease: _Lease) -> list[bytes] | None:
        """The leased file's events, or None: deleted and counted when unreadable, corrupt or oversized; put back and
        ignored when it is not a regular file of ours (checked on the open descriptor, before a byte is read)."""
        try:
            fd = os.open(lease.path, _READ_FLAGS)
        except FileNotFoundError:
            self._forget(lease)
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # swapped for a symlink after the scan
                self._give_back(lease, IGNORED_SYMLINK)
                return None
            return self._discard(lease, SPOOL_DROP_CORRUPT, f"unreadable ({exc})")
        try:
            st = os.fstat(fd)
            unsafe = _unsafe_reason(st)
            if unsafe is not None:
                self._give_back(lease, unsafe)
                return None
            if st.st_size > self.max_bytes:
                return self._discard(lease, SPOOL_DROP_OVERSIZED, f"oversized ({st.st_size} bytes)")
            # One byte more than fstat said: a file still growing is not one of ours.
            data = _read_at_most(fd, st.st_size + 1)
        except OSError as exc:
            return self._discard(lease, SPOOL_DROP_CORRUPT, f"unreadable ({exc})")
        finally:
            os.close(fd)
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        if len(data) <= st.st_size and len(lines) == lease.count and all(lines) and data.endswith(b"\n"):
            return lines
        return self._discard(lease, SPOOL_DROP_CORRUPT, f"corrupt ({len(lines)} lines, name says {lease.count})")

    def _discard(self, lease: _Lease, reason: str, problem: str) -> list[bytes] | None:
        _logger.debug("LumiqTrace disk spool: deleting %s file %s", problem, lease.path.name)
        if self._delete(lease.path.name):
            self._count_dropped(reason, lease.count)
        self._forget(lease)
        return None

    def _give_back(self, lease: _Lease, reason: str) -> None:
        """Undo the lease of a file that is not ours to read, and ignore it from now on."""
        with contextlib.suppress(OSError):
            os.rename(lease.path, self.directory / lease.base)
        self._forget(lease)
        self._ignore(lease.base, reason)

    def _split(self, lease: _Lease, lines: list[bytes], keep: int) -> tuple[_Lease, list[bytes]]:
        """Keep the first ``keep`` events leased and put the rest back as a file of the same age."""
        head, tail = lines[:keep], lines[keep:]
        match = _BASE_RE.match(lease.base)
        ts_ns = int(match.group("ts")) if match else int(self._clock() * 1e9)
        head_base = self._new_name(ts_ns, len(head))
        head_path = self.directory / f"{head_base}{lease.path.name[len(lease.base) :]}"
        try:
            # Crashing between these steps leaves some events in two files: sent twice, deduplicated by event_id.
            self._write_file(self._new_name(ts_ns, len(tail)), tail)
            with _claims_lock:
                _active_claims.add(head_path.name)
            self._write_file(head_base, head, final=head_path.name)
            self._delete(lease.path.name)
        except OSError:
            _logger.debug("LumiqTrace disk spool: cannot split %s, claiming it whole", lease.path.name, exc_info=True)
            with _claims_lock:
                _active_claims.discard(head_path.name)
            return lease, lines
        self._forget(lease)
        return _Lease(path=head_path, base=head_base, count=len(head)), head

    def ack(self, batch: SpoolBatch) -> None:
        """The batch was delivered or permanently dropped: delete its files."""
        if batch._done:
            return
        batch._done = True
        for lease in batch._leases:
            self._unlink_lease(lease)
            self._forget(lease)

    def release(self, batch: SpoolBatch, *, undelivered: Sequence[bytes] | None = None) -> None:
        """Hand back a batch that was not (wholly) delivered: what is still to send becomes claimable again, in its
        original age order; what was delivered or dropped is deleted.

        ``undelivered``: the lines of the batch still to send, in any order (the slices of one batch may travel
        concurrently, so the failures need not be a tail). None means all of them.
        """
        if batch._done:
            return
        batch._done = True
        left = None if undelivered is None else Counter(undelivered)
        for lease in batch._leases:
            keep = lease.lines if left is None else [line for line in lease.lines if _take_one(left, line)]
            if not keep:
                self._unlink_lease(lease)
            elif len(keep) == len(lease.lines):
                self._put_back(lease)
            else:
                self._put_back_part(lease, keep)
            self._forget(lease)

    def _put_back(self, lease: _Lease) -> None:
        try:
            os.rename(lease.path, self.directory / lease.base)
        except OSError as exc:
            _logger.debug("LumiqTrace disk spool: cannot release %s: %s", lease.path.name, exc)

    def _put_back_part(self, lease: _Lease, keep: list[bytes]) -> None:
        """Replace a leased file by one holding only ``keep``, of the same age, so delivered events are not resent."""
        match = _BASE_RE.match(lease.base)
        ts_ns = int(match.group("ts")) if match else int(self._clock() * 1e9)
        try:
            # Crashing between these steps leaves the kept events in two files: sent twice, deduplicated by event_id.
            self._write_file(self._new_name(ts_ns, len(keep)), keep)
        except OSError:
            _logger.debug(
                "LumiqTrace disk spool: cannot rewrite %s, releasing it whole", lease.path.name, exc_info=True
            )
            self._put_back(lease)
            return
        self._unlink_lease(lease)

    def _unlink_lease(self, lease: _Lease) -> None:
        try:
            os.unlink(lease.path)
        except FileNotFoundError:
            pass  # a stale-lease reclaim took it back; resending later is safe (event_id dedup)
        except OSError as exc:
            _logger.debug("LumiqTrace disk spool: cannot delete %s: %s", lease.path.name, exc)

    def pending_events(self) -> int:
        """Approximate number of unclaimed, unexpired events waiting in the directory (all processes)."""
        try:
            files, _ = self._scan(maintain=False)
        except OSError:
            return 0
        cutoff = self._expiry_cutoff_ns()
        return sum(entry.count for entry in files if entry.ts_ns >= cutoff)

    # -- housekeeping --------------------------------------------------------------------------------------------

    def _scan(self, *, maintain: bool) -> tuple[list[_File], int]:
        """Unclaimed files oldest first, and the bytes used by all our files.

        With ``maintain``: expired files and stale temporary files are deleted, stale leases put back.
        """
        now = self._clock()
        expiry = self._expiry_cutoff_ns()
        stale_ns = int((now - self.lease_timeout_s) * 1e9)
        files: list[_File] = []
        used = 0
        with os.scandir(self.directory) as entries:
            for entry in entries:
                name = entry.name
                base = _BASE_RE.match(name)
                claimed = None if base else _CLAIMED_RE.match(name)
                temp = None if base or claimed else _TEMP_RE.match(name)
                if not (base or claimed or temp):
                    continue  # not ours
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue  # gone meanwhile
                unsafe = _unsafe_reason(st)
                if unsafe is not None:
                    self._ignore(name, unsafe)
                    continue
                size = st.st_size
                if base:
                    ts_ns, count = int(base.group("ts")), int(base.group("count"))
                    if maintain and ts_ns < expiry:
                        if self._delete(name):
                            self._count_dropped(SPOOL_DROP_EXPIRED, count)
                            _logger.debug("LumiqTrace disk spool: %d events expired", count)
                        continue
                    if size > self.max_bytes:
                        # Never written by us (we never exceed the cap): set aside unread, once, not on every export.
                        if maintain and self._delete(name):
                            self._count_dropped(SPOOL_DROP_OVERSIZED, count)
                            _logger.debug("LumiqTrace disk spool: deleted oversized file %s (%d bytes)", name, size)
                        continue
                    files.append(_File(name, ts_ns, count, size))
                elif claimed:
                    base_name = name[: name.index(".claimed-")]
                    if maintain and self._lease_stale(claimed, now):
                        try:
                            os.rename(self.directory / name, self.directory / base_name)
                        except OSError:
                            pass  # the holder acked or released it meanwhile, or another reclaimer won
                        else:
                            _logger.debug("LumiqTrace disk spool: reclaimed stale lease %s", name)
                            ts_ns, count = int(claimed.group("ts")), int(claimed.group("count"))
                            files.append(_File(base_name, ts_ns, count, size))
                            continue
                    used += size
                else:
                    assert temp is not None
                    # A writer that crashed between creating and renaming its temporary file left it behind.
                    if maintain and int(temp.group("ts")) < stale_ns and self._delete(name):
                        continue
                    used += size
        files.sort(key=lambda f: f.name)
        used += sum(f.size for f in files)
        return files, used

    def _lease_stale(self, claimed: re.Match[str], now: float) -> bool:
        if now * 1000 - int(claimed.group("cms")) > self.lease_timeout_s * 1000:
            return True
        pid = int(claimed.group("cpid"))
        if pid == os.getpid():
            with _claims_lock:
                return claimed.string not in _active_claims
        return not _pid_alive(pid)

    def _expiry_cutoff_ns(self) -> int:
        return int((self._clock() - self.max_age_s) * 1e9)

    def _delete(self, name: str) -> bool:
        try:
            os.unlink(self.directory / name)
        except OSError:
            return False  # someone else deleted or claimed it: theirs to count
        return True

    def _forget(self, lease: _Lease) -> None:
        with _claims_lock:
            _active_claims.discard(lease.path.name)

    def _count_dropped(self, reason: str, count: int) -> None:
        if count <= 0:
            return
        with self._lock:
            self._dropped[reason] = self._dropped.get(reason, 0) + count

    def _ignore(self, name: str, reason: str) -> None:
        with self._lock:
            if name in self._ignored_names:
                return
            self._ignored_names[name] = None
            if len(self._ignored_names) > _MAX_IGNORED_NAMES:
                del self._ignored_names[next(iter(self._ignored_names))]
            self._ignored[reason] = self._ignored.get(reason, 0) + 1
        _logger.debug("LumiqTrace disk spool: ignoring %s (%s)", name, reason)


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks = []
    while limit > 0:
        chunk = os.read(fd, min(limit, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        limit -= len(chunk)
    return b"".join(chunks)


def _take_one(left: Counter[bytes], line: bytes) -> bool:
    """Remove one ``line`` from the multiset ``left``; whether it was there."""
    if left[line] > 0:
        left[line] -= 1
        return True
    return False


def _positive(name: str, value: float, default: float) -> float:
    try:
        ok = float(value) > 0
    except (TypeError, ValueError):
        ok = False
    if ok:
        return float(value)
    _logger.warning("LumiqTrace disk spool: %s=%r is not a positive number, using %s", name, value, default)
    return default


class UnsafeSpoolDirectory(OSError):
    """The spool directory could be changed by someone else: a symlink, shared-writable, or another user's."""


def _make_private_directory(path: pathlib.Path) -> None:
    """Create ``path`` (and missing parents) with mode 0o700, or check that the existing one is private."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        missing = [p for p in (path, *path.parents) if not os.path.lexists(p)]
        # The mode argument is filtered by the umask and ignored for parents: set it explicitly on what we create.
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        for created in missing:
            if os.name != "nt":
                os.chmod(created, 0o700)
        st = os.lstat(path)  # what is there now, whoever created it
    _check_private(path, st)


def _check_private(path: pathlib.Path, st: os.stat_result) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeSpoolDirectory("it is a symlink, and the spool does not follow symlinks")
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(path))
    if os.name == "nt":
        return  # modes and owners mean little there; ACLs decide
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        raise UnsafeSpoolDirectory(f"it is owned by uid {st.st_uid}, not by this process's user (uid {os.geteuid()})")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeSpoolDirectory(
            f"it is group- or world-writable (mode {stat.S_IMODE(st.st_mode):o}): use a directory only this user can "
            "write"
        )


def _probe_writable(path: pathlib.Path) -> None:
    """Create and delete a file: the only check that also catches read-only mounts and ACLs (root ignores modes)."""
    if not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(path))
    probe = path / f".probe-{os.getpid()}-{secrets.token_hex(4)}"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    os.unlink(probe)
