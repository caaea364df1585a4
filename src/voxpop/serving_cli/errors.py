"""The CLI's error boundary: where a user's mistake (a VoxpopError) or the user's environment (a
full disk, a read-only folder, a directory where a file goes, a closed pipe) becomes one line on
stderr and exit code 2, never a traceback. Messages are made printable first: a header, a label or
a path from a file may hold terminal escape sequences (`voxpop.data.terminal`)."""

from __future__ import annotations

import errno
import functools
import os
import sys
from collections.abc import Callable

import typer

from voxpop.data.errors import VoxpopError
from voxpop.data.terminal import STDOUT, printable

# An OSError with one of these is the user's environment (a full or read-only disk, a missing
# permission, a directory where a file goes), not a bug: one line naming the path.
ENVIRONMENT_ERRNOS = frozenset(
    {
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EFBIG,
        errno.EROFS,
        errno.EACCES,
        errno.EPERM,
        errno.EISDIR,
        errno.ENOTDIR,
        errno.ENOENT,
        errno.EEXIST,
        errno.ENOTEMPTY,
        errno.ENAMETOOLONG,
        errno.ELOOP,
        errno.EMFILE,
        errno.ENFILE,
        errno.EIO,
        errno.EXDEV,
        errno.EBUSY,
        errno.ETXTBSY,
    }
)


def user_errors(command: Callable) -> Callable:
    """A VoxpopError, or an OSError of the user's environment, becomes one line `error: ...` on
    stderr (control characters escaped) and exit code 2, never a traceback. Output still buffered
    for stdout is written before the command counts as done, so a full disk fails it too."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            result = command(*args, **kwargs)
            flush_stdout()
            return result
        except VoxpopError as err:
            error_line(str(err))
            raise typer.Exit(code=2) from None
        except OSError as err:
            raise typer.Exit(code=os_error_exit_code(err)) from None

    return wrapper


def error_line(message: str) -> None:
    """Print `error: message` on stderr as one line, control characters escaped."""
    typer.secho(f"error: {printable(message)}", fg="red", err=True)


def os_error_exit_code(err: OSError) -> int:
    """Report an OSError of the user's environment as one `error:` line and return 2; a closed
    pipe on stdout (`| head`) ends quietly with exit code 1, as Typer's own output does; any other
    OSError is a bug and is raised again."""
    if err.filename is None and err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        # Every file voxpop writes goes through voxpop.data.atomic, which names its target: an
        # unnamed write that found no room was one to stdout (typer.echo, a progress line).
        err.filename = STDOUT
    if err.filename == STDOUT or err.errno == errno.EPIPE:
        _silence_stdout()
    if err.errno == errno.EPIPE:
        return 1  # as Typer does for its own output
    if err.errno not in ENVIRONMENT_ERRNOS:
        raise err
    error_line(describe_os_error(err))
    return 2


def describe_os_error(err: OSError) -> str:
    """`path: No space left on device` (both paths of a rename)."""
    where = " -> ".join(str(name) for name in (err.filename, err.filename2) if name is not None)
    what = err.strerror or str(err)
    return f"{where}: {what}" if where else what


def flush_stdout() -> None:
    """Write out what stdout still buffers; a failure is an OSError naming <stdout>."""
    try:
        sys.stdout.flush()
    except OSError as err:
        err.filename = err.filename or STDOUT
        raise


def _silence_stdout() -> None:
    # What stdout still buffers cannot be written: point it at /dev/null so that Python's own
    # flush at exit does not print a second error.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (e.g. captured in tests)
        pass
