"""Writing a file only this user may read (mode 0600): the admin password, pending writes.

Through a temporary name and a rename, so a reader never sees half a file; the temporary name is
created exclusively without following symlinks, so a planted link cannot redirect the write.
"""
from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, data: bytes, fsync: bool = False) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
