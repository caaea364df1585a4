"""`voxpop info`: not built yet (see the open issues)."""

import typer


def info() -> None:
    """Not built yet."""
    raise typer.Exit(code=1)
