"""``lifecycle evaluate`` on a small realistic world: the model meets the issue's targets.

The issue sets its targets for 10,000 contacts; this runs 2,000 (about 75 s), where
some figures rest on few cases, so a few thresholds are looser, each by what that size
allows (docs/model.md, "Measuring the model"):

- the lead score: about 45 positives, so the AUC's standard error is about 0.02; the
  AUC target stays 0.75 and its lead over the recency baseline must be 0.03 (not 0.05);
- macro-F1: advocate and loyal have about 10 contacts each, so one miss moves their F1
  by 0.1; the mean must be 0.88 (not 0.90);
- CRM conflicts: about 120 injected; found recall 0.85 (not 0.90).
Every other target is the issue's own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lifecycle.sandbox.accounts import gone_at_first_load
from lifecycle.sandbox.world import WorldConfig, simulate, truth_table

ROOT = Path(__file__).resolve().parents[2]
CONTACTS, SEED = 2000, 42
ISSUE_KEYS = {
    "stage_accuracy",
    "stage_macro_f1",
    "stage_f1",
    "stage_entry_median_abs_days",
    "lead_score_auc",
    "lead_score_positives",
    "baseline_auc",
    "identity_precision",
    "identity_recall",
    "bot_events_in_sessions",
    "machine_open_precision",
    "machine_open_recall",
    "crm_conflicts_found_recall",
}

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("evaluate") / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lifecycle.cli",
            "evaluate",
            "--contacts",
            str(CONTACTS),
            "--seed",
            str(SEED),
            "--profile",
            "realistic",
            "--workdir",
            str(workdir),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
    )
    return proc, workdir


def figures_of(evaluation) -> dict:
    return json.loads(evaluation[0].stdout.strip().splitlines()[-1])


def test_exits_zero_and_prints_progress_then_one_json_object(evaluation):
    proc, workdir = evaluation
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert any("dbt build" in line for line in lines)
    assert any("ingesting segment" in line for line in lines)
    assert any("realistic profile" in line for line in lines)
    figures = json.loads(lines[-1])
    assert set(figures) >= ISSUE_KEYS
    assert figures["profile"] == "realistic"
    # without --keep the work folder is removed
    assert not workdir.exists()


def test_the_help_names_the_profiles_and_the_figures():
    proc = subprocess.run(
        [sys.executable, "-m", "lifecycle.cli", "evaluate", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 0
    assert "--profile" in proc.stdout and "realistic" in proc.stdout
    assert "crm_conflicts_found_recall" in " ".join(proc.stdout.split())


def test_figures_meet_the_targets_a_2000_contact_world_allows(evaluation):
    f = figures_of(evaluation)
    world = simulate(WorldConfig(contacts=CONTACTS, seed=SEED, profile="realistic"))
    truth = truth_table(world)
    # archived or deleted at the vendors: rightly in no mart (sandbox/accounts.py)
    erased = gone_at_first_load(world, world.now_ts)
    assert f["contacts"] == int((truth.is_known_at_now & ~truth.person.isin(erased)).sum())
    assert f["lead_score_positives"] >= 30, f
    assert f["stage_accuracy"] >= 0.93, f
    assert f["stage_macro_f1"] >= 0.88, f
    assert f["stage_entry_median_abs_days"] <= 1.0, f
    assert f["lead_score_auc"] >= 0.75, f
    assert f["lead_score_auc"] - f["baseline_auc"] >= 0.03, f
    assert f["identity_precision"] >= 0.995, f
    assert f["identity_recall"] >= 0.95, f
    assert f["bot_events_in_sessions"] == 0, f
    assert f["machine_open_precision"] >= 0.9, f
    assert f["machine_open_recall"] >= 0.9, f
    assert f["crm_conflicts_found_recall"] >= 0.85, f
