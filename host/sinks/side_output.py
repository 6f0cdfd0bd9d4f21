"""A side output file (the `--angles` CSV, the `--events` JSON lines): written as the session runs,
never allowed to stop it.

In: `write(text)` from the live path. Out: the file. A file that cannot be written any more (full
disk, unplugged stick, closed pipe) is reported once through `report(message)` in plain words and
dropped for the rest of the session; the recording and the live feedback go on. Opening fails with
a UserError, since then nothing has started yet.
"""
from __future__ import annotations

import errno
import sys

from host.errors import UserError


def os_error_words(e: OSError) -> str:
    """An OSError as a few plain words ("the disk is full")."""
    if e.errno == errno.ENOSPC:
        return "the disk is full"
    if e.errno == errno.EPIPE:
        return "the program reading it went away"
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return "it cannot be written (read-only or no permission)"
    return (e.strerror or str(e)).lower()


class SideFile:
    """A text file written by the live path; `name` says what it is ("the angle file")."""

    def __init__(self, path: str, name: str, report=None, buffering: int = -1, stream=None):
        self.path, self.name = path, name
        self.report = report or (lambda msg: print(f"hiplevel: {msg}", file=sys.stderr, flush=True))
        self.failed: str | None = None
        self._own = stream is None
        if stream is not None:
            self.file = stream
            return
        try:
            self.file = open(path, "w", buffering=buffering)
        except OSError as e:
            raise UserError(f"cannot write {name} {path}: {os_error_words(e)}") from None

    def write(self, text: str, flush: bool = False) -> None:
        if self.file is None:
            return
        try:
            self.file.write(text)
            if flush:
                self.file.flush()
        except OSError as e:
            self._drop(e)

    def _drop(self, e: OSError) -> None:
        """Say it once, let go of the file (its unwritten buffer is lost, not retried)."""
        f, self.file = self.file, None
        if self.failed is None:
            self.failed = f"{self.name} stopped: {os_error_words(e)} ({self.path})"
            self.report(f"{self.failed[0].upper()}{self.failed[1:]}. The live feedback and the recording go on.")
        if self._own:
            try:
                f.close()
            except OSError:
                pass  # the buffer could not be written: that was just said

    def close(self) -> None:
        f, self.file = self.file, None
        if f is None:
            return
        try:
            if self._own:
                f.close()
            else:
                f.flush()
        except OSError as e:
            self.file = f
            self._drop(e)
