# SPDX-License-Identifier: Apache-2.0
"""One fork-hook registry for the whole package.

gunicorn ``--preload`` and ``multiprocessing`` fork after the exporter exists: in the child, locks held by a parent
thread stay locked forever, sessions share the parent's sockets and background threads are gone. Every module that
owns such state registers a hook here instead of calling ``os.register_at_fork`` itself, so there is one call, one
order (registration order) and one place where a failing hook is contained.

Bound methods are held weakly: a registered object may still be garbage-collected, and its hook then disappears.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable
from types import MethodType
from typing import Union

_logger = logging.getLogger(__name__)

_Hook = Union[Callable[[], None], "weakref.WeakMethod[Callable[[], None]]"]
_hooks: list[_Hook] = []
_before_hooks: list[Callable[[], None]] = []
_hooks_lock = threading.Lock()


def before_fork(hook: Callable[[], None]) -> None:
    """Run ``hook`` in the parent just before every fork (e.g. to let a background import finish first)."""
    with _hooks_lock:
        _before_hooks.append(hook)


def _run_before_hooks() -> None:
    for hook in list(_before_hooks):
        try:
            hook()
        except Exception:  # a failing hook must not stop the fork or the other hooks
            _logger.debug("LumiqTrace before-fork hook %r failed", hook, exc_info=True)


def after_fork_in_child(hook: Callable[[], None]) -> None:
    """Run ``hook`` in every child forked from now on. A bound method is held weakly, a function strongly."""
    entry: _Hook = weakref.WeakMethod(hook) if isinstance(hook, MethodType) else hook
    with _hooks_lock:
        # Dead weak methods of collected objects go now, so the list stays as long as the live objects.
        _hooks[:] = [h for h in _hooks if not isinstance(h, weakref.WeakMethod) or h() is not None]
        _hooks.append(entry)


def _run_hooks_in_child() -> None:
    global _hooks_lock
    # A parent thread may have held the lock at fork time: the child gets a new one.
    _hooks_lock = threading.Lock()
    # A snapshot: hooks may register new objects (an exporter rebuilds its runtime), which must not run now.
    for entry in list(_hooks):
        hook = entry() if isinstance(entry, weakref.WeakMethod) else entry
        if hook is None:
            continue
        try:
            hook()
        except Exception:  # one broken hook must not leave the others' state half-rebuilt
            _logger.debug("LumiqTrace after-fork hook %r failed", hook, exc_info=True)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_run_before_hooks, after_in_child=_run_hooks_in_child)
