"""The scale bench's figures from a run that stopped part-way (bench/scale.py)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _scale():
    spec = importlib.util.spec_from_file_location("scale", ROOT / "bench" / "scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _stage(wall: float, peak: int = 100, **extra) -> dict:
    return {"wall_s": wall, "cpu_s": wall, "peak_mb": peak, "rows": None, **extra}


def test_a_run_stopped_after_the_ingests_reports_only_their_figures(tmp_path, monkeypatch):
    scale = _scale()
    monkeypatch.setattr(scale, "RESULTS", tmp_path / "results")
    full = {
        "ingest_hubspot": _stage(300.0, floor={"floor_s": 250.0}),
        "ingest_segment": _stage(10.0, peak=900, result={"counts": {"events": 1_000_000}}),
        "ingest_mailchimp": _stage(90.0, peak=1200),
        "erase": _stage(2.0),
        "dbt_run": _stage(120.0, peak=3000),
    }
    world = {"contacts": 1_000_000, "simulate_s": 1.0, "land_s": 1.0, "events_landed": 1}
    (tmp_path / "work" / "run1").mkdir(parents=True)
    progress = {"world": world, "full": {"night": "2026-06-30", "stages": full}}
    (tmp_path / "work" / "run1" / "progress.json").write_text(json.dumps(progress))

    path = scale.from_progress(tmp_path / "work")
    out = json.loads(path.read_text())
    assert path.name.endswith("-l.json") and out["scale"] == "l" and out["partial"] is True
    f = out["figures"]
    assert f["full_ingest_s"] == 400.0
    assert f["ingest_floor_s"] == 255.0  # HubSpot's floor + 1,000,000 events at 200,000/s
    assert f["segment_events_per_s"] == 100_000
    assert f["full_night_peak_mb"] == 3000
    # dbt_run_predict, quality and the incremental night never ran: no figure, not a zero
    for key in ("dbt_build_s", "quality_s", "quality_peak_mb", "incremental_night_s"):
        assert f[key] is None, key
    assert "full:dbt_run_predict" in out["not_measured"] and "raw_sql" in out["not_measured"]
    assert "full:dbt_run" not in out["not_measured"]
    assert sum(n.startswith("incremental:") for n in out["not_measured"]) == len(scale.FULL_NIGHT)


def test_the_report_section_is_rewritten_in_place_and_keeps_the_next_heading_apart(
    tmp_path, monkeypatch
):
    scale = _scale()
    monkeypatch.setattr(scale, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(scale, "HERE", tmp_path)
    full = {"ingest_hubspot": _stage(300.0, floor={"floor_s": 250.0})}
    world = {"contacts": 10**6, "simulate_s": 1.0, "land_s": 1.0, "events_landed": 1, "peak_mb": 9}
    (tmp_path / "work" / "run1").mkdir(parents=True)
    progress = {"world": world, "full": {"night": "2026-06-30", "stages": full}}
    (tmp_path / "work" / "run1" / "progress.json").write_text(json.dumps(progress))
    scale.from_progress(tmp_path / "work")
    report = tmp_path / "REPORT.md"
    report.write_text(
        "# Benchmark report\n\n## Scale: the whole night (old)\n\nold\n\n## Ingestion\n\nkept\n"
    )

    scale.write_report()
    first = report.read_text()
    lines = first.splitlines()
    assert "old" not in lines and lines[-1] == "kept"
    at = lines.index("## Ingestion")
    assert lines[at - 1] == "" and lines[at - 2].startswith("  - **partial run**: it did not reach")
    assert first.count("## Scale: the whole night") == 1
    scale.write_report()  # a second rewrite changes nothing
    assert report.read_text() == first
