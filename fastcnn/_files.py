"""Opening a user's file without surprises: only regular files, and never waiting on a FIFO."""

from __future__ import annotations

import errno
import os
import stat
from typing import IO, Union

PathLike = Union[str, "os.PathLike[str]"]


def open_regular(path: PathLike, error: type[Exception], what: str) -> IO[bytes]:
    """``open(path, "rb")`` for a regular file only.

    The file is opened with O_NONBLOCK, so a FIFO (named pipe) with no writer returns at once
    instead of blocking, then refused, as are devices (``/dev/zero`` never ends) and sockets:
    ``error("PATH: not a regular file (it is a FIFO (named pipe)); WHAT")``. A directory raises
    IsADirectoryError; a missing or unreadable file the usual OSError.
    """
    name = os.fspath(path)
    fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory, not a file", name)
        if not stat.S_ISREG(mode):
            raise error(f"{name}: not a regular file (it is a {_kind(mode)}); {what}")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"
