"""`voxpop spaces`: list the named search spaces, or show one in the space-file syntax."""

from __future__ import annotations

import typer

from voxpop.serving_cli.errors import user_errors

app = typer.Typer(
    help=(
        "List and show the named hyperparameter search spaces. Plain `voxpop spaces` lists "
        "them.\n\n"
        "Example: voxpop spaces show bilstm > my_space.yaml, edit it, then "
        "voxpop tune data.csv --space my_space.yaml"
    ),
    invoke_without_command=True,
)


@app.callback()
def _default(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:
        list_spaces()


@app.command("list")
@user_errors
def list_spaces() -> None:
    """List the named spaces with a one-line description each.

    Example: voxpop spaces list
    """
    from voxpop.tune_spaces import SPACES, describe

    width = max(map(len, SPACES))
    for name in SPACES:
        typer.echo(f"{name:<{width}}  {describe(name)}")


@app.command("show")
@user_errors
def show(
    name: str = typer.Argument(
        ..., help="A space name from `voxpop spaces list`, or a .yaml/.yml/.json space file."
    ),
) -> None:
    """Print one space's keys with their sampler kind and range, in the space-file syntax
    (YAML), so the output can be saved, edited and passed back with `voxpop tune --space FILE`.
    A space file is checked as `voxpop tune` checks it: a value no trial could use is an error.

    Example: voxpop spaces show bilstm
    """
    import yaml

    from voxpop.tune_spaces import resolve_space
    from voxpop.tune_spaces.space_check import check_space
    from voxpop.tune_spaces.space_file import space_to_spec

    space_name, space = resolve_space(name)
    check_space(space_name, space)
    typer.echo(f"# space {space_name}: keys, then a constant or {{sampler: arguments}}")
    for key, value in space_to_spec(space).items():
        flow = yaml.safe_dump(value, default_flow_style=True, width=200).strip()
        typer.echo(f"{key}: {flow.removesuffix('...').strip()}")
