"""What a report shows, as one model: sections of text, lists, tables and figures.

`report_document` lays out an evaluation report (the dict of `evaluation.build_report`) and
`summary_document` the summary of several; `voxpop.reports.render` writes either model as
Markdown or HTML, so the two files always hold the same content.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from voxpop.reports.plots import CONFUSION_MATRIX, PER_CLASS_F1, RELIABILITY
from voxpop.reports.significance import RESAMPLES

TABLE_COLUMNS = ("model", "macro_f1", "accuracy", "weighted_f1", "log_loss", "ece")
SECTION_NAMES = {"votes": "{} vote", "members": "member {}", "baselines": "baseline {}"}
COMPARISON_HEADER = [
    "vote",
    "against",
    "macro-F1 difference",
    "95% interval",
    "vote better in",
    "verdict",
]
CONTRIBUTION_HEADER = ["member", "family", "vote macro-F1 without it", "it adds"]
COMPARISON_NOTE = (
    f"Paired bootstrap over the evaluated rows ({RESAMPLES:,} resamples): 'better' "
    "or 'worse' when the 95% interval excludes zero, else the gap is within noise."
)
SUMMARY_COLUMNS = ["input", "rows", "vote", "macro_f1", "accuracy", "ece", "warnings"]


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class ReportWarning:
    text: str


@dataclass(frozen=True)
class Items:
    items: list[str]


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list]


@dataclass(frozen=True)
class Figure:
    file: str  # the PNG's file name beside the report
    alt: str


Block = Text | ReportWarning | Items | Table | Figure


@dataclass(frozen=True)
class Section:
    title: str | None  # None: the blocks before the first heading
    blocks: list[Block] = field(default_factory=list)


@dataclass(frozen=True)
class Document:
    title: str
    sections: list[Section]


def main_table(report: dict) -> list[dict]:
    """One row per vote, member and baseline: the figures of the report's main table.
    Members are named with their family when the report records it (`member m1 (cnn)`)."""
    families = report.get("data", {}).get("member_families", {})
    return [
        {
            "model": template.format(name)
            + (f" ({families[name]})" if section == "members" and name in families else ""),
            **{key: metrics.get(key) for key in TABLE_COLUMNS[1:]},
        }
        for section, template in SECTION_NAMES.items()
        for name, metrics in report[section].items()
    ]


def report_document(report: dict, *, title: str) -> Document:
    """Warnings, the data, the main table, each vote against its rivals, per-class scores and
    figures, agreement, what each member adds and the hardest examples."""
    primary = report["primary"]
    sections = [
        Section(
            None,
            [ReportWarning(w["message"]) for w in report["warnings"]] or [Text("No warnings.")],
        ),
        Section("Data", [Items(_data_items(report))]),
        Section(
            "Models",
            [
                Table(
                    list(TABLE_COLUMNS),
                    [[row[key] for key in TABLE_COLUMNS] for row in main_table(report)],
                )
            ],
        ),
    ]
    if report["comparisons"]:
        sections.append(
            Section(
                "Is the vote better?",
                [Text(COMPARISON_NOTE), Table(COMPARISON_HEADER, _comparison_rows(report))],
            )
        )
    sections.append(
        Section(
            f"Per class ({primary} vote)",
            [
                Table(
                    ["class", "precision", "recall", "f1", "support"],
                    _per_class_rows(report["votes"][primary]),
                ),
                Figure(CONFUSION_MATRIX, "confusion matrix"),
                Figure(PER_CLASS_F1, "per-class F1"),
                Figure(RELIABILITY, "reliability diagram"),
            ],
        )
    )
    if report["agreement"]["members"]:
        sections.append(Section("Member agreement", _agreement_tables(report["agreement"])))
    if report["member_contributions"]:
        sections.append(
            Section(
                f"What each member adds ({primary} vote without it)",
                [Table(CONTRIBUTION_HEADER, _contribution_rows(report))],
            )
        )
    sections.append(
        Section(
            f"Hardest examples ({primary} vote, confidently wrong)",
            [
                Table(
                    ["id", "true", "predicted", "confidence", "text"],
                    [
                        [e["id"], e["true"], e["predicted"], e["confidence"], e["text"]]
                        for e in report["hardest"]
                    ],
                )
            ],
        )
    )
    return Document(title, sections)


def summary_rows(reports: dict[str, dict]) -> list[dict]:
    """The primary vote's figures for each input (name -> report), one row each."""
    return [
        {
            "input": name,
            "rows": r["data"].get("n_evaluated"),
            "vote": r["primary"],
            **{key: r["votes"][r["primary"]][key] for key in ("macro_f1", "accuracy", "ece")},
            "warnings": len(r["warnings"]),
        }
        for name, r in reports.items()
    ]


def summary_document(rows: list[dict]) -> Document:
    return Document(
        "Evaluation summary",
        [
            Section(
                None, [Table(SUMMARY_COLUMNS, [[row[k] for k in SUMMARY_COLUMNS] for row in rows])]
            ),
        ],
    )


def _data_items(report: dict) -> list[str]:
    data = report["data"]
    items = [
        f"rows: {data.get('n_rows')}, evaluated: {data.get('n_evaluated')}, "
        f"label unmapped: {data.get('n_unmapped')}"
    ]
    if data.get("unmapped_labels"):
        counts = ", ".join(f"{k!r} ({v})" for k, v in data["unmapped_labels"].items())
        listed = data.get("unmapped_rows", [])
        more = f" (first {len(listed)})" if data.get("n_unmapped", 0) > len(listed) else ""
        items.append(f"unmapped labels: {counts}; rows{more}: {listed}")
    if data.get("absent_classes"):
        items.append(f"classes absent from this set: {', '.join(data['absent_classes'])}")
    if report.get("oov"):
        oov = report["oov"]
        items.append(
            f"out-of-vocabulary: mean rate {oov['mean_rate']:.1%}, "
            f"{oov['share_mostly_oov']:.1%} of texts mostly OOV"
        )
    return items


def _per_class_rows(metrics: dict) -> list[list]:
    return [
        [label, scores["precision"], scores["recall"], scores["f1"], scores["support"]]
        for label, scores in metrics["per_class"].items()
    ]


def _agreement_tables(agreement: dict) -> list[Table]:
    """The pairwise agreement matrix, and how often each vote overrules the best member."""
    pairwise = Table(
        [""] + agreement["members"],
        [[a] + row for a, row in zip(agreement["members"], agreement["pairwise"], strict=True)],
    )
    overrules = Table(
        [
            "vote",
            "best member",
            "overrules",
            "vote right, member wrong",
            "vote wrong, member right",
        ],
        [
            [
                rule,
                o["best_member"],
                o["rate"],
                o["vote_right_member_wrong"],
                o["vote_wrong_member_right"],
            ]
            for rule, o in agreement["vote_overrules_best_member"].items()
        ],
    )
    return [pairwise, overrules]


def _contribution_rows(report: dict) -> list[list]:
    families = report["data"].get("member_families", {})
    return [
        [member_id, families.get(member_id, "-"), c["macro_f1_without"], f"{c['adds']:+.4f}"]
        for member_id, c in report["member_contributions"].items()
    ]


def _comparison_rows(report: dict) -> list[list]:
    return [
        [
            c["vote"],
            c["against"],
            f"{c['difference']:+.4f}",
            f"[{c['ci95'][0]:+.4f}, {c['ci95'][1]:+.4f}]",
            f"{c['share_a_better']:.0%}",
            c["verdict"],
        ]
        for c in report["comparisons"]
    ]
