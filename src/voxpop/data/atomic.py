"""Atomic writes: a temporary sibling, then a rename, so a reader never sees half a file.

Whatever moment a writer is killed at (SIGKILL included), the target holds either its old content
or the new one. A killed writer leaves its temporary behind, named `.NAME.PID-HOST.XXXX.tmp`: a
hidden sibling that nothing reads as output, removed by the next write to the same target once
the process that made it is gone.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import json
import os
import shutil
import socket
import tempfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from voxpop.data.errors import VoxpopError

# A write that fails for want of room is reported as a failure to write the target.
_NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_HOST = f"{zlib.crc32(socket.gethostname().encode()):08x}"


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success rename it onto `target`.

    Works for files and directories (an existing directory is swapped with the new one in one
    step). On an exception the temporary is removed and `target` is left as it was.
    """
    target = Path(target)
    _remove_stale_temporaries(target)
    try:
        tmp = Path(
            tempfile.mkdtemp(
                prefix=f".{_stem(target)}.{os.getpid()}-{_HOST}.", suffix=".tmp", dir=target.parent
            )
        )
    except OSError as err:  # a missing directory, a file in the way, no write permission
        raise VoxpopError(f"{target}: cannot write in {target.parent} ({err.strerror})") from None
    tmp.rmdir()  # the caller creates a file or a directory of that name
    try:
        yield tmp
        if tmp.is_dir() and target.is_dir():
            _replace_dir(tmp, target)
        else:
            os.replace(tmp, target)
    except BaseException as err:
        _remove(tmp)
        if (
            isinstance(err, OSError)
            and err.errno in _NO_ROOM
            and (err.filename is None or str(err.filename).startswith(str(tmp)))
        ):
            err.filename = str(target)  # the user knows the target, not its temporary
        raise


def check_target(
    target: str | os.PathLike, *, reads: Sequence[str | os.PathLike] = (), folder: bool = False
) -> None:
    """Refuse, before any work, a file target that cannot be written or would destroy an input.

    A VoxpopError when `target` is a directory, its folder is missing or not writable, or it is
    one of the files in `reads` under another name (the same file through a symlink, a hard link
    or another spelling of the path), or lies inside one of the directories in `reads`.
    `folder=True`: `target` is a folder written whole (replacing one of that name): refused when
    it is a file, or when something in `reads` lies inside it.
    """
    target = Path(target)
    if folder:
        if target.exists() and not target.is_dir():
            raise VoxpopError(f"{target}: is a file (give a folder name)")
        for source in map(Path, reads):
            if target.resolve() in [source.resolve(), *source.resolve().parents]:
                raise VoxpopError(
                    f"{target}: holds {source}, which this command reads; write elsewhere"
                )
    elif target.is_dir():
        raise VoxpopError(f"{target}: is a directory (give a file name)")
    _probe(target.parent, what=str(target))
    for source in map(Path, reads):
        if source.is_dir() and source.resolve() in target.resolve().parents:
            raise VoxpopError(
                f"{target}: is inside {source}, which this command reads; write elsewhere"
            )
        if target.exists() and source.exists() and os.path.samefile(target, source):
            raise VoxpopError(
                f"{target}: is the input {source}; writing it would destroy the "
                "input (write elsewhere, then rename)"
            )


def check_writable(folder: str | os.PathLike, *, what: str) -> None:
    """Refuse, before any work, a folder that cannot be written: `folder` itself or, when it does
    not exist yet, the nearest folder above it (where it would be made). `what` names it."""
    folder = Path(folder).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    _probe(folder, what=what)


def _probe(folder: Path, *, what: str) -> None:
    # The one sure test of a folder being writable (permissions, a read-only mount, quotas, a
    # file where the folder should be): make a file in it and remove it.
    try:
        handle, probe = tempfile.mkstemp(prefix=".voxpop-", suffix=".probe", dir=folder)
        os.close(handle)
        os.unlink(probe)
    except OSError as err:
        raise VoxpopError(f"{what}: cannot write in {folder} ({err.strerror})") from None


def _replace_dir(tmp: Path, target: Path) -> None:
    # os.replace cannot overwrite a non-empty directory. Linux swaps the two in one step
    # (renameat2 RENAME_EXCHANGE, which the standard library does not expose), so the target is
    # never missing; elsewhere the old one is moved aside first and restored by the next write
    # if the process dies in between (see _remove_stale_temporaries).
    if _exchange(tmp, target):
        _remove(tmp)  # now the old directory
        return
    old = _aside(target)
    os.replace(target, old)
    os.replace(tmp, target)
    _remove(old)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically; False where the system or file system cannot."""
    renameat2 = getattr(_libc(), "renameat2", None)
    if renameat2 is None:
        return False
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):  # not supported here: fall back
        return False
    raise OSError(code, os.strerror(code), str(b))


@functools.cache
def _libc():
    try:
        return ctypes.CDLL(None, use_errno=True)  # the C library the interpreter runs on
    except OSError:
        return None


def _aside(target: Path) -> Path:
    return target.with_name(f".{_stem(target)}.old")


def _stem(target: Path) -> str:
    # The target's name, shortened so that a temporary's name stays within NAME_MAX (255 bytes).
    return target.name.encode()[:120].decode(errors="ignore")


def _remove_stale_temporaries(target: Path) -> None:
    """Remove the temporaries that killed writers of `target` on this host left behind, and
    finish a directory swap that a writer was killed in the middle of."""
    old = _aside(target)
    try:
        if old.is_dir():
            if not target.exists():
                os.replace(old, target)  # killed between moving the old one aside and the new in
            else:
                _remove(old)
        for stale in target.parent.glob(f".{_glob_escape(_stem(target))}.*-{_HOST}.*.tmp"):
            pid = stale.name[len(_stem(target)) + 2 :].split("-", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                _remove(stale)
    except OSError:  # an unreadable folder: the write itself will say what is wrong
        pass


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        with contextlib.suppress(OSError):
            path.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
