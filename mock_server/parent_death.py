"""Processes that bria-mock starts end with it, even when it is killed outright (``kill -9``, the OOM killer).

Ctrl-C and SIGTERM stop them in order (:mod:`mock_server.workers`); this covers the rest, on Linux,
through ``prctl(PR_SET_PDEATHSIG)``: the kernel sends the process SIGTERM when the thread that
started it ends. Elsewhere it does nothing.
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


@functools.cache
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def prepare() -> None:
    """Load what :func:`end_with_parent` needs, in the parent: a child between fork and exec must not load a library."""
    _libc()


def end_with_parent(parent: int | None = None) -> None:
    """Ask for SIGTERM when this process's parent ends; if ``parent`` (its pid) has already gone, end now."""
    libc = _libc()
    if libc is None:
        return
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if parent is not None and os.getppid() != parent:  # it ended before the request was made
        os.kill(os.getpid(), signal.SIGTERM)
