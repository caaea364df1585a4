"""`voxpop export`: not built yet (see the open issues)."""

import typer


def export() -> None:
    """Not built yet."""
    raise typer.Exit(code=1)
