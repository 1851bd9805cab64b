"""The lifecycle model's quality and build time on a simulated world (``lifecycle evaluate``).

Quick: 2,000 contacts; full: 10,000 (the issue's reference size). Figures: the four
quality figures against ground truth, plus wall time of the whole evaluate run.
"""

from __future__ import annotations

import io
import sys
from contextlib import redirect_stdout
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))


def run(quick: bool) -> dict:
    from lifecycle.evaluate import evaluate  # noqa: PLC0415

    contacts = 2_000 if quick else 10_000
    log = io.StringIO()
    with redirect_stdout(log):
        figures = evaluate(contacts, seed=42)
    return {
        "title": f"Lifecycle model vs ground truth ({contacts:,} contacts, seed 42, "
        f"{figures['profile']} profile)",
        "figures": {
            "stage accuracy": figures["stage_accuracy"],
            "stage macro-F1": figures["stage_macro_f1"],
            "lead score ROC AUC (leads + MQLs, deal or purchase within 30 d)": figures[
                "lead_score_auc"
            ],
            "recency baseline AUC": figures["baseline_auc"],
            "identity precision": figures["identity_precision"],
            "identity recall": figures["identity_recall"],
            "leads + MQLs scored / positives": (
                f"{figures['lead_score_scored']} / {figures['lead_score_positives']}"
            ),
            "evaluate wall time (s): simulate + serve + ingest + dbt build": figures["seconds"],
        },
        "notes": "Same as `lifecycle evaluate --contacts N --seed 42`; see docs/model.md.",
    }
