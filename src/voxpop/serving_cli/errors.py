"""The one place where a user's mistake (a VoxpopError) becomes one line on stderr and exit 2."""

from __future__ import annotations

import functools
from collections.abc import Callable

import typer

from voxpop.data.errors import VoxpopError


def user_errors(command: Callable) -> Callable:
    """A VoxpopError becomes one red line on stderr and exit code 2, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except VoxpopError as err:
            typer.secho(f"error: {err}", fg="red", err=True)
            raise typer.Exit(code=2) from None

    return wrapper
