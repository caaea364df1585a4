"""`voxpop bench`: not built yet (see the open issues)."""

import typer


def bench() -> None:
    """Not built yet."""
    raise typer.Exit(code=1)
