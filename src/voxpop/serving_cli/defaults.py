"""The library's defaults, read once for the CLI's options and help texts, so that a default, a
limit or a list of choices lives in one place: the function or registry that uses it."""

from __future__ import annotations

import dataclasses
import inspect

from voxpop.data import Preprocessor, read_table
from voxpop.ensemble import Ensemble
from voxpop.export.bundle import export_bundle
from voxpop.reports.bundle_eval import evaluate_table
from voxpop.tune_spaces.runner import TuneOptions


def keyword_defaults(function) -> dict:
    """Parameter name -> default of a function or class (those that have one)."""
    return {name: parameter.default
            for name, parameter in inspect.signature(function).parameters.items()
            if parameter.default is not parameter.empty}


def field_defaults(record) -> dict:
    """Field name -> default of a dataclass (those that have one)."""
    return {field.name: field.default for field in dataclasses.fields(record)
            if field.default is not dataclasses.MISSING}


def one_of(names) -> str:
    """Choices for a help text: `a, b or c`."""
    *rest, last = names
    return f"{', '.join(rest)} or {last}" if rest else last


TUNE = field_defaults(TuneOptions)
EXPORT = keyword_defaults(export_bundle)
PREPROCESSOR = keyword_defaults(Preprocessor)
READ = keyword_defaults(read_table)
LOAD = keyword_defaults(Ensemble.load)
EVALUATE = keyword_defaults(evaluate_table)
