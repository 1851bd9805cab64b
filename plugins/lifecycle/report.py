"""The run report: Markdown + HTML with a funnel chart and stage-transition counts.

Written after each night next to the serving snapshot (``<serving dir>/reports/<night>/``),
from the snapshot itself, so it shows exactly what BI sees. Charts are PNGs rendered with
matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import html
import logging
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

from lifecycle.config import settings

log = logging.getLogger(__name__)

TRANSITIONS_SQL = """
with ordered as (
    select contact_id, stage, valid_from,
           lag(stage) over (partition by contact_id order by valid_from, stage) as from_stage
    from marts.fct_lifecycle_stage_history
)
select from_stage, stage as to_stage, count(*) as n,
       count(*) filter (where valid_from >= ? and valid_from < ?) as tonight
from ordered where from_stage is not null
group by 1, 2 order by n desc, 1, 2
"""


def report_dir(night: str) -> Path:
    return settings().serving_path.parent / "reports" / night


def stage_order() -> list[str]:
    from lifecycle.quality.suites import lifecycle_stages  # noqa: PLC0415

    return lifecycle_stages(settings().dbt_project_dir)


def gather(con: duckdb.DuckDBPyConnection, night: str, run_id: str | None) -> dict:
    """Funnel, transitions and quality outcome of the night, from the serving snapshot."""
    as_of = datetime.fromisoformat(night)
    counts = dict(
        con.execute(
            "select lifecycle_stage, count(*) from marts.dim_contacts group by 1"
        ).fetchall()
    )
    order = stage_order()
    funnel = [(s, counts.get(s, 0)) for s in order] + [
        (s, n) for s, n in counts.items() if s not in order
    ]
    transitions = con.execute(TRANSITIONS_SQL, [as_of - timedelta(days=1), as_of]).fetchall()
    quality: dict = {}
    if run_id:
        try:
            quality = dict(
                con.execute(
                    "select status, count(*) from ops.quality_results where run_id = ? group by 1",
                    [run_id],
                ).fetchall()
            )
            warned = con.execute(
                "select suite, check_name, observed from ops.quality_results "
                "where run_id = ? and status = 'warn' order by 1, 2",
                [run_id],
            ).fetchall()
            quality["warnings"] = [f"{s}: {c} {o}" for s, c, o in warned]
        except duckdb.CatalogException:
            quality = {}
    return {"funnel": funnel, "transitions": transitions, "quality": quality}


def _charts(data: dict, out: Path) -> dict[str, Path]:
    import matplotlib  # noqa: PLC0415 - heavy: only when writing the report

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    paths = {"funnel": out / "funnel.png", "transitions": out / "transitions.png"}
    stages = [s for s, _ in data["funnel"]]
    values = [n for _, n in data["funnel"]]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(stages) + 1.2))
    ax.barh(stages[::-1], values[::-1], color="#3b6ea8")
    for y, v in enumerate(values[::-1]):
        ax.text(v, y, f" {v}", va="center", fontsize=8)
    ax.set_xlabel("contacts")
    ax.set_title("Contacts per lifecycle stage")
    fig.tight_layout()
    fig.savefig(paths["funnel"], dpi=110)
    plt.close(fig)

    top = data["transitions"][:15]
    labels = [f"{a} -> {b}" for a, b, _, _ in top][::-1]
    fig, ax = plt.subplots(figsize=(7, 0.35 * max(len(top), 1) + 1.2))
    ax.barh(labels, [n for _, _, n, _ in top][::-1], color="#8a5fb0", label="all time")
    ax.barh(labels, [t for _, _, _, t in top][::-1], color="#e8a33d", label="this night")
    ax.set_xlabel("contacts")
    ax.set_title("Stage transitions")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(paths["transitions"], dpi=110)
    plt.close(fig)
    return paths


def markdown(summary: dict, data: dict, docs: str | None) -> str:
    q = data["quality"]
    lines = [
        f"# Night {summary['night']}",
        "",
        f"Serving snapshot (read-only for BI): `{summary['serving']}`",
        "",
        "## Quality gate",
        "",
        f"{q.get('pass', 0)} checks passed, {q.get('warn', 0)} warnings, "
        f"{q.get('fail', 0)} failures." + (f" Data Docs: `{docs}`" if docs else ""),
        "",
        *[f"- warning: {w}" for w in q.get("warnings", [])],
        "",
        "## Rows loaded per source",
        "",
        "| source | rows |",
        "|---|---|",
        *[
            f"| {src} | {', '.join(f'{t}={n}' for t, n in sorted(tbl.items())) or 'none'} |"
            for src, tbl in summary["rows_loaded"].items()
        ],
        "",
        "## Lifecycle funnel",
        "",
        "![funnel](funnel.png)",
        "",
        "| stage | contacts |",
        "|---|---|",
        *[f"| {s} | {n} |" for s, n in data["funnel"]],
        "",
        "## Stage transitions",
        "",
        "![transitions](transitions.png)",
        "",
        "| from | to | all time | this night |",
        "|---|---|---|---|",
        *[f"| {a} | {b} | {n} | {t} |" for a, b, n, t in data["transitions"]],
        "",
        "## Audience syncs",
        "",
        "| audience | destination | members | adds | removes | status |",
        "|---|---|---|---|---|---|",
        *[
            f"| {r['audience']} | {r['destination']} | {r.get('audience_size', 0)} | "
            f"{r.get('planned_adds', 0)} | {r.get('planned_removes', 0)} | {r['status']} |"
            for r in summary["syncs"]
        ],
        "",
    ]
    return "\n".join(lines)


def _md_to_html(md: str, title: str) -> str:
    """Just enough Markdown for this report: headings, tables, images, bullets, code."""
    out, table = [], False
    for line in md.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if set("".join(cells)) <= set("-"):
                continue
            tag = "th" if not table else "td"
            if not table:
                out.append("<table>")
                table = True
            out.append(
                "<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells) + "</tr>"
            )
            continue
        if table:
            out.append("</table>")
            table = False
        if line.startswith("# "):
            out.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("## "):
            out.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("!["):
            alt, src = line[2:].split("](")
            out.append(f'<img alt="{html.escape(alt)}" src="{html.escape(src[:-1])}">')
        elif line.startswith("- "):
            out.append(f"<li>{html.escape(line[2:])}</li>")
        elif line:
            parts = html.escape(line).split("`")
            out.append(
                "<p>"
                + "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
                + "</p>"
            )
    if table:
        out.append("</table>")
    style = (
        "body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px}"
        "img{max-width:100%}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
        f"</title><style>{style}</style></head><body>{''.join(out)}</body></html>"
    )


def write(summary: dict, run_id: str | None = None, docs: str | None = None) -> dict[str, Path]:
    """Write summary.md, summary.html, funnel.png and transitions.png; return their paths."""
    from lifecycle.warehouse import serving_connection  # noqa: PLC0415

    out = report_dir(summary["night"])
    out.mkdir(parents=True, exist_ok=True)
    con = serving_connection()
    try:
        data = gather(con, summary["night"], run_id)
    finally:
        con.close()
    paths = _charts(data, out)
    md = markdown(summary, data, docs)
    paths["markdown"] = out / "summary.md"
    paths["html"] = out / "summary.html"
    paths["markdown"].write_text(md)
    paths["html"].write_text(_md_to_html(md, f"lifecycle night {summary['night']}"))
    log.info("run report: %s (Markdown: %s)", paths["html"].as_uri(), paths["markdown"])
    return paths
