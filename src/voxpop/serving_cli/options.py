"""Options several commands share (`--format`, `--feature-cols`) and help-text helpers.

Everything here imports only the stages' light `options` modules: the commands' defaults come
from there at import, and the heavy work is imported inside each command function.
"""

from __future__ import annotations

import typer

from voxpop.data.errors import VoxpopError
from voxpop.data.options import FORMATS


def one_of(names) -> str:
    """Choices for a help text: `a, b or c`."""
    *rest, last = names
    return f"{', '.join(rest)} or {last}" if rest else last


def names(text: str | None) -> list[str] | None:
    """A comma-separated option as a list of names (None when not given or empty)."""
    if text is None:
        return None
    parsed = [name.strip() for name in text.split(",") if name.strip()]
    return parsed or None


def format_option(tables: str = "the input table"):
    """`--format`: the table format of `tables`, overriding their file extensions."""
    return typer.Option(
        None,
        "--format",
        show_default=False,
        help=f"Table format of {tables}: {one_of(FORMATS)} (default: by each file's "
        "extension; give it for a file whose extension does not say, e.g. data.txt).",
    )


def feature_cols_option():
    """`--feature-cols` of the commands that run a bundle."""
    return typer.Option(
        None,
        "--feature-cols",
        show_default=False,
        help="Comma-separated numeric columns fed beside the text, in the order the bundle was "
        "tuned with (default: the bundle's own feature columns, read by name; see "
        "`voxpop info`). Only for bundles tuned with --feature-cols.",
    )


def feature_columns(ensemble, option: str | None) -> tuple[str, ...]:
    """The table's columns for the bundle's user features: `--feature-cols` when given (one per
    feature the bundle was tuned with), else the bundle's own names. A bundle tuned without
    feature columns reads none.

    Reading the names from the bundle is the default because it is the only order that cannot be
    wrong: features given in another order would be scaled with each other's statistics.
    """
    expected = list(ensemble.preprocessor.user_feature_names)
    given = names(option)
    if given is None:
        return tuple(expected)
    if len(given) != len(expected):
        tuned = f"with {len(expected)} ({', '.join(expected)})" if expected else "without any"
        raise VoxpopError(
            f"--feature-cols: {len(given)} column(s) given ({', '.join(given)}), "
            f"but the bundle was tuned {tuned}"
        )
    return tuple(given)
