"""Write a report as report.json (everything), report.md (tables for a terminal or a pull request)
and report.html (self-contained: images embedded as base64), plus the PNG figures."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from voxpop.data.atomic import write_bytes, write_json, write_text
from voxpop.data.errors import VoxpopError
from voxpop.reports.plots import report_plots
from voxpop.reports.significance import RESAMPLES

FORMATS = ("md", "html", "json")
TABLE_COLUMNS = ("model", "macro_f1", "accuracy", "weighted_f1", "log_loss", "ece")
SECTION_NAMES = {"votes": "{} vote", "members": "member {}", "baselines": "baseline {}"}
COMPARISON_HEADER = ["vote", "against", "macro-F1 difference", "95% interval", "vote better in",
                     "verdict"]
CONTRIBUTION_HEADER = ["member", "family", "vote macro-F1 without it", "it adds"]
COMPARISON_NOTE = (f"Paired bootstrap over the evaluated rows ({RESAMPLES:,} resamples): 'better' "
                   "or 'worse' when the 95% interval excludes zero, else the gap is within noise.")


def parse_formats(spec: str) -> list[str]:
    """`--format md,html,json` as a list; an unknown name is a VoxpopError listing the valid ones."""
    formats = [name.strip().lower() for name in spec.split(",") if name.strip()]
    unknown = [name for name in formats if name not in FORMATS]
    if unknown or not formats:
        raise VoxpopError(
            f"--format: {', '.join(unknown) or 'nothing given'} not valid (choose from "
            f"{', '.join(FORMATS)}, comma-separated)"
        )
    return formats


def main_table(report: dict) -> list[dict]:
    """One row per vote, member and baseline: the figures of the report's main table.
    Members are named with their family when the report records it (`member m1 (cnn)`)."""
    families = report.get("data", {}).get("member_families", {})
    return [
        {"model": template.format(name) + (f" ({families[name]})" if section == "members"
                                            and name in families else ""),
         **{key: metrics.get(key) for key in TABLE_COLUMNS[1:]}}
        for section, template in SECTION_NAMES.items()
        for name, metrics in report[section].items()
    ]


def _cell(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _markdown_table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(_cell(value).replace("|", "\\|") for value in row) + " |"
              for row in rows]
    return lines + [""]


def _data_lines(report: dict) -> list[str]:
    data = report["data"]
    lines = [f"- rows: {data.get('n_rows')}, evaluated: {data.get('n_evaluated')}, "
             f"label unmapped: {data.get('n_unmapped')}"]
    if data.get("unmapped_labels"):
        counts = ", ".join(f"{k!r} ({v})" for k, v in data["unmapped_labels"].items())
        listed = data.get("unmapped_rows", [])
        more = f" (first {len(listed)})" if data.get("n_unmapped", 0) > len(listed) else ""
        lines.append(f"- unmapped labels: {counts}; rows{more}: {listed}")
    if data.get("absent_classes"):
        lines.append(f"- classes absent from this set: {', '.join(data['absent_classes'])}")
    if report.get("oov"):
        oov = report["oov"]
        lines.append(f"- out-of-vocabulary: mean rate {oov['mean_rate']:.1%}, "
                     f"{oov['share_mostly_oov']:.1%} of texts mostly OOV")
    return lines + [""]


def _per_class_rows(metrics: dict) -> list[list]:
    return [[label, scores["precision"], scores["recall"], scores["f1"], scores["support"]]
            for label, scores in metrics["per_class"].items()]


def _agreement_tables(agreement: dict) -> list[tuple[list, list]]:
    """(header, rows) of the pairwise agreement matrix and of how often each vote overrules the
    best member."""
    pairwise = ([""] + agreement["members"],
                [[a] + row for a, row in zip(agreement["members"], agreement["pairwise"])])
    overrules = (
        ["vote", "best member", "overrules", "vote right, member wrong", "vote wrong, member right"],
        [[rule, o["best_member"], o["rate"], o["vote_right_member_wrong"],
          o["vote_wrong_member_right"]]
         for rule, o in agreement["vote_overrules_best_member"].items()],
    )
    return [pairwise, overrules]


def _contribution_rows(report: dict) -> list[list]:
    families = report["data"].get("member_families", {})
    return [[member_id, families.get(member_id, "-"), c["macro_f1_without"], f"{c['adds']:+.4f}"]
            for member_id, c in report["member_contributions"].items()]


def _comparison_rows(report: dict) -> list[list]:
    return [[c["vote"], c["against"], f"{c['difference']:+.4f}",
             f"[{c['ci95'][0]:+.4f}, {c['ci95'][1]:+.4f}]", f"{c['share_a_better']:.0%}",
             c["verdict"]]
            for c in report["comparisons"]]


def render_markdown(report: dict, *, title: str) -> str:
    """report.md: warnings, the main table, each vote against its rivals, per-class scores,
    agreement, what each member adds and hardest examples."""
    primary = report["primary"]
    lines = [f"# {title}", ""]
    lines += [f"> **warning:** {w['message']}" for w in report["warnings"]] or ["No warnings."]
    lines += ["", "## Data", ""] + _data_lines(report)
    lines += ["## Models", ""]
    lines += _markdown_table(list(TABLE_COLUMNS),
                             [[row[key] for key in TABLE_COLUMNS] for row in main_table(report)])
    if report["comparisons"]:
        lines += ["## Is the vote better?", "", COMPARISON_NOTE, ""]
        lines += _markdown_table(COMPARISON_HEADER, _comparison_rows(report))
    lines += [f"## Per class ({primary} vote)", ""]
    lines += _markdown_table(["class", "precision", "recall", "f1", "support"],
                             _per_class_rows(report["votes"][primary]))
    lines += ["![confusion matrix](confusion_matrix.png)", "",
              "![per-class F1](per_class_f1.png)", "", "![reliability](reliability.png)", ""]
    if report["agreement"]["members"]:
        lines += ["## Member agreement", ""]
        for header, rows in _agreement_tables(report["agreement"]):
            lines += _markdown_table(header, rows)
    if report["member_contributions"]:
        lines += [f"## What each member adds ({primary} vote without it)", ""]
        lines += _markdown_table(CONTRIBUTION_HEADER, _contribution_rows(report))
    lines += [f"## Hardest examples ({primary} vote, confidently wrong)", ""]
    lines += _markdown_table(
        ["id", "true", "predicted", "confidence", "text"],
        [[e["id"], e["true"], e["predicted"], e["confidence"], " ".join(e["text"].split())]
         for e in report["hardest"]])
    return "\n".join(lines)


def _html_table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(name: str, png: bytes, alt: str) -> str:
    encoded = base64.b64encode(png).decode("ascii")
    return f'<img id="{name.removesuffix(".png")}" alt="{alt}" src="data:image/png;base64,{encoded}">'


HTML_STYLE = (
    "body{font-family:sans-serif;max-width:70em;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.2em .5em}"
    ".warning{background:#fff3cd;border-left:4px solid #e0a800;padding:.4em .8em;margin:.3em 0}"
    "img{max-width:100%}"
)


def render_html(report: dict, plots: dict[str, bytes], *, title: str) -> str:
    """report.html: the Markdown report's content with every figure embedded (no external files)."""
    primary = report["primary"]
    parts = [f"<h1>{html.escape(title)}</h1>"]
    parts += [f'<p class="warning">{html.escape(w["message"])}</p>' for w in report["warnings"]]
    parts += ["<h2>Data</h2><ul>"]
    parts += [f"<li>{html.escape(line[2:])}</li>" for line in _data_lines(report) if line]
    parts += ["</ul><h2>Models</h2>",
              _html_table(list(TABLE_COLUMNS),
                          [[row[key] for key in TABLE_COLUMNS] for row in main_table(report)]),
              *(["<h2>Is the vote better?</h2>", f"<p>{html.escape(COMPARISON_NOTE)}</p>",
                 _html_table(COMPARISON_HEADER, _comparison_rows(report))]
                if report["comparisons"] else []),
              f"<h2>Per class ({html.escape(primary)} vote)</h2>",
              _html_table(["class", "precision", "recall", "f1", "support"],
                          _per_class_rows(report["votes"][primary])),
              _img("confusion_matrix.png", plots["confusion_matrix.png"], "confusion matrix"),
              _img("per_class_f1.png", plots["per_class_f1.png"], "per-class F1"),
              _img("reliability.png", plots["reliability.png"], "reliability diagram"),
              "<h2>Member agreement</h2>" if report["agreement"]["members"] else "",
              *(_html_table(header, rows) for header, rows in _agreement_tables(report["agreement"])
                if report["agreement"]["members"]),
              *([f"<h2>What each member adds ({html.escape(primary)} vote without it)</h2>",
                 _html_table(CONTRIBUTION_HEADER, _contribution_rows(report))]
                if report["member_contributions"] else []),
              f"<h2>Hardest examples ({html.escape(primary)} vote)</h2>",
              _html_table(["id", "true", "predicted", "confidence", "text"],
                          [[e["id"], e["true"], e["predicted"], e["confidence"], e["text"]]
                           for e in report["hardest"]])]
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{HTML_STYLE}</style></head>"
            f"<body>\n{body}\n</body></html>\n")


def write_report(report: dict, out_dir: Path, *, formats: list[str], title: str) -> list[Path]:
    """Write the requested formats (and the PNG figures) into out_dir, each file atomically.
    Returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = report_plots(report)
    written = []
    for name, png in plots.items():
        write_bytes(out_dir / name, png)
        written.append(out_dir / name)
    renderers = {
        "json": lambda: json.dumps(report, indent=2, ensure_ascii=False) + "\n",
        "md": lambda: render_markdown(report, title=title),
        "html": lambda: render_html(report, plots, title=title),
    }
    for fmt in formats:
        write_text(out_dir / f"report.{fmt}", renderers[fmt]())
        written.append(out_dir / f"report.{fmt}")
    return written


def write_summary(reports: dict[str, dict], out_dir: Path) -> list[Path]:
    """summary.md and summary.json: the primary vote's figures for each input, side by side."""
    rows = [
        {"input": name, "rows": r["data"].get("n_evaluated"), "vote": r["primary"],
         **{key: r["votes"][r["primary"]][key] for key in ("macro_f1", "accuracy", "ece")},
         "warnings": len(r["warnings"])}
        for name, r in reports.items()
    ]
    header = ["input", "rows", "vote", "macro_f1", "accuracy", "ece", "warnings"]
    markdown = "\n".join(["# Evaluation summary", ""]
                         + _markdown_table(header, [[row[k] for k in header] for row in rows]))
    write_text(out_dir / "summary.md", markdown)
    write_json(out_dir / "summary.json", {"inputs": rows})
    return [out_dir / "summary.md", out_dir / "summary.json"]
