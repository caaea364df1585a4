"""Write a report as report.json (everything), report.md (for a terminal or a pull request) and
report.html (self-contained: images embedded as base64), plus the PNG figures.

Markdown and HTML are two renderers of one `voxpop.reports.document.Document`, so they hold the
same sections, tables and figures. This module owns the report folder: the only one that names
its files, writes them, and removes the ones an earlier run left that this run did not rewrite.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable
from pathlib import Path

from voxpop.data.atomic import write_bytes, write_json, write_text
from voxpop.data.errors import VoxpopError
from voxpop.reports.document import (
    Document,
    Figure,
    Items,
    ReportWarning,
    Text,
    report_document,
    summary_document,
    summary_rows,
)
from voxpop.reports.options import REPORT_FORMATS
from voxpop.reports.plots import PLOT_FILES, report_plots

REPORT_FILES = (*(f"report.{fmt}" for fmt in REPORT_FORMATS), *PLOT_FILES)
SUMMARY_MD, SUMMARY_JSON = "summary.md", "summary.json"

HTML_STYLE = (
    "body{font-family:sans-serif;max-width:70em;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.2em .5em}"
    ".warning{background:#fff3cd;border-left:4px solid #e0a800;padding:.4em .8em;margin:.3em 0}"
    "img{max-width:100%}"
)


def parse_formats(spec: str) -> list[str]:
    """`--report-format md,html,json` as a list; an unknown name is a VoxpopError listing the
    valid ones."""
    formats = [name.strip().lower() for name in spec.split(",") if name.strip()]
    unknown = [name for name in formats if name not in REPORT_FORMATS]
    if unknown or not formats:
        raise VoxpopError(
            f"--report-format: {', '.join(unknown) or 'nothing given'} not valid (choose from "
            f"{', '.join(REPORT_FORMATS)}, comma-separated)"
        )
    return formats


# --------------------------------------------------------------------------- renderers
def _cell(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _markdown_block(block) -> list[str]:
    if isinstance(block, Text):
        return [block.text]
    if isinstance(block, ReportWarning):
        return [f"> **warning:** {block.text}"]
    if isinstance(block, Items):
        return [f"- {item}" for item in block.items]
    if isinstance(block, Figure):
        return [f"![{block.alt}]({block.file})"]
    # A table cell is one line (a newline would end the row) and a pipe would split it.
    cells = [
        [" ".join(_cell(value).split()).replace("|", "\\|") for value in row] for row in block.rows
    ]
    return [
        "| " + " | ".join(block.header) + " |",
        "|" + " --- |" * len(block.header),
        *("| " + " | ".join(row) + " |" for row in cells),
    ]


def to_markdown(document: Document) -> str:
    lines = [f"# {document.title}", ""]
    for section in document.sections:
        if section.title:
            lines += [f"## {section.title}", ""]
        for block in section.blocks:
            lines += [*_markdown_block(block), ""]
    return "\n".join(lines)


def _html_block(block, plots: dict[str, bytes]) -> str:
    if isinstance(block, Text):
        return f"<p>{html.escape(block.text)}</p>"
    if isinstance(block, ReportWarning):
        return f'<p class="warning">{html.escape(block.text)}</p>'
    if isinstance(block, Items):
        return "<ul>" + "".join(f"<li>{html.escape(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, Figure):
        encoded = base64.b64encode(plots[block.file]).decode("ascii")
        return (
            f'<img id="{block.file.removesuffix(".png")}" alt="{html.escape(block.alt)}" '
            f'src="data:image/png;base64,{encoded}">'
        )
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in block.header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
        for row in block.rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def to_html(document: Document, plots: dict[str, bytes]) -> str:
    """The document as one HTML page, its figures (file name -> PNG bytes) embedded."""
    parts = [f"<h1>{html.escape(document.title)}</h1>"]
    for section in document.sections:
        if section.title:
            parts.append(f"<h2>{html.escape(section.title)}</h2>")
        parts += [_html_block(block, plots) for block in section.blocks]
    body = "\n".join(parts)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(document.title)}</title><style>{HTML_STYLE}</style></head>"
        f"<body>\n{body}\n</body></html>\n"
    )


# --------------------------------------------------------------------------- the report folder
def check_report_folder(path: Path) -> None:
    """A VoxpopError, before any work, when `path` exists and is not a folder."""
    if path.exists() and not path.is_dir():
        raise VoxpopError(
            f"{path}: exists and is not a folder; reports are written into a "
            "folder (give a new or existing folder)"
        )


def write_report(report: dict, out_dir: Path, *, formats: list[str], title: str) -> list[Path]:
    """Write the requested formats (and the PNG figures) into out_dir, each file atomically.
    Returns the paths written."""
    check_report_folder(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise VoxpopError(f"{out_dir}: cannot create the report folder ({err.strerror})") from None
    plots = report_plots(report)
    document = report_document(report, title=title)
    writers: dict[str, Callable[[Path], None]] = {
        "json": lambda path: write_json(path, report),
        "md": lambda path: write_text(path, to_markdown(document)),
        "html": lambda path: write_text(path, to_html(document, plots)),
    }
    written = []
    for name, png in plots.items():
        write_bytes(out_dir / name, png)
        written.append(out_dir / name)
    for fmt in formats:
        writers[fmt](out_dir / f"report.{fmt}")
        written.append(out_dir / f"report.{fmt}")
    return written


def write_summary(reports: dict[str, dict], out_dir: Path) -> list[Path]:
    """summary.md and summary.json: the primary vote's figures for each input, side by side."""
    rows = summary_rows(reports)
    write_text(out_dir / SUMMARY_MD, to_markdown(summary_document(rows)))
    write_json(out_dir / SUMMARY_JSON, {"inputs": rows})
    return [out_dir / SUMMARY_MD, out_dir / SUMMARY_JSON]


def remove_stale(out: Path, written: list[Path]) -> list[Path]:
    """After a run wrote `written` into `out`, remove what an earlier run left there and this one
    did not write again: report files of other formats, a summary, the folders of other inputs.
    Only voxpop's own file names are removed, and a sub-folder only when it holds nothing else.
    Returns the paths removed."""
    keep = {path.resolve() for path in written}
    removed = _remove_stale_files(out, keep, (*REPORT_FILES, SUMMARY_MD, SUMMARY_JSON))
    for folder in sorted(p for p in out.iterdir() if p.is_dir()):
        entries = list(folder.iterdir())
        if entries and all(p.is_file() and p.name in REPORT_FILES for p in entries):
            removed += _remove_stale_files(folder, keep, REPORT_FILES)
            if not any(folder.iterdir()):
                folder.rmdir()
    return removed


def _remove_stale_files(folder: Path, keep: set[Path], names: tuple[str, ...]) -> list[Path]:
    stale = [
        path
        for path in sorted(folder.iterdir())
        if path.is_file() and path.name in names and path.resolve() not in keep
    ]
    for path in stale:
        path.unlink()
    return stale
