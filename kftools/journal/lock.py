"""The single-writer lock: an open-file-description (OFD) write lock on the first page.

OFD locks belong to the open file, not the process, so a reader opened in the
writer's own process cannot drop the writer's lock by closing (the classic
POSIX-lock trap), and the kernel releases the lock when the holder dies: a
lock never outlives a killed writer. The C++ header takes the same lock.
"""

from __future__ import annotations

import fcntl
import os
import struct

_FLOCK = struct.Struct("hhqqi4x")  # struct flock on Linux (x86-64 and aarch64)
F_OFD_GETLK = getattr(fcntl, "F_OFD_GETLK", 36)
F_OFD_SETLK = getattr(fcntl, "F_OFD_SETLK", 37)


def try_lock(fd: int) -> bool:
    """Take the writer lock on ``fd`` (opened read-write); False if another holds it."""
    try:
        fcntl.fcntl(fd, F_OFD_SETLK, _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0))
        return True
    except OSError:
        return False


def is_locked(fd: int) -> bool:
    """True if some open file (any process) holds the writer lock. Needs only read access."""
    res = fcntl.fcntl(fd, F_OFD_GETLK, _FLOCK.pack(fcntl.F_RDLCK, os.SEEK_SET, 0, 0, 0))
    return _FLOCK.unpack(res)[0] != fcntl.F_UNLCK
