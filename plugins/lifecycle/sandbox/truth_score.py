"""The lead-scoring rules of the dbt seeds, applied to a person's TRUE events.

Ground truth for MQL is "the day the rules' lead score first crosses the MQL
threshold", computed on what the person really did (every device, no bots, no
privacy-proxy opens), not on what the vendors recorded. This module reads the same
seeds the dbt model reads (the rules are the spec) and evaluates them independently,
with numpy, at the end of every day on which the person produced a signal: between two
such days the score only decays, so it cannot cross upwards there.

Arithmetic follows the seeds' documentation (``docs/model.md``): a signal occurrence is
worth ``points * 0.5 ** (age_days / half_life_days)``; the sum per rule is capped at its
``max_points``, per rule group by the group caps, each part (fit, engagement) rounded
and clipped to 0..50; the person is an MQL when fit + engagement >= the threshold.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

DAY = 86_400


@dataclass(frozen=True)
class ScoreRules:
    fit_rules: list[dict]
    fit_caps: dict[str, float]
    engagement_rules: list[dict]
    engagement_caps: dict[str, float]
    key_pages: list[tuple[str, str]]
    lead_forms: frozenset[str]
    threshold: float


def _csv(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def load_rules(project_dir: Path | None = None) -> ScoreRules:
    """The scoring seeds and the MQL threshold of the dbt project."""
    if project_dir is None:
        from lifecycle.config import settings  # noqa: PLC0415

        project_dir = settings().dbt_project_dir
    seeds = project_dir / "seeds"
    project = yaml.safe_load((project_dir / "dbt_project.yml").read_text())
    return ScoreRules(
        fit_rules=_csv(seeds / "lead_score_fit_rules.csv"),
        fit_caps={
            r["rule_group"]: float(r["max_points"])
            for r in _csv(seeds / "lead_score_fit_groups.csv")
        },
        engagement_rules=_csv(seeds / "lead_score_engagement_rules.csv"),
        engagement_caps={
            r["rule_group"]: float(r["max_points"])
            for r in _csv(seeds / "lead_score_engagement_groups.csv")
        },
        key_pages=[(r["page_path_prefix"], r["page_group"]) for r in _csv(seeds / "key_pages.csv")],
        lead_forms=frozenset(
            r["form_id"] for r in _csv(seeds / "lead_forms.csv") if r["makes_lead"] == "true"
        ),
        threshold=float(project["vars"]["mql_score_threshold"]),
    )


def _round(x: np.ndarray) -> np.ndarray:
    """SQL's round(): half away from zero."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def fit_scores(
    rules: ScoreRules, job_title: np.ndarray, industry: np.ndarray, employees: np.ndarray
) -> np.ndarray:
    """Fit score 0..50 per person from their CRM attributes."""
    values = {"job_title": job_title.astype(object), "industry": industry.astype(object)}
    groups: dict[str, np.ndarray] = {}
    for r in rules.fit_rules:
        op, m = r["operator"], r["match_value"]
        if r["attribute"] == "employee_count":
            v = employees.astype(float)
            hit = v >= float(m) if op == "gte" else v < float(m) if op == "lt" else v == float(m)
        else:
            hit = values[r["attribute"]] == m if op == "eq" else np.zeros(len(job_title), bool)
        g = groups.setdefault(r["rule_group"], np.zeros(len(job_title)))
        g += np.where(hit, float(r["points"]), 0.0)
    total = np.zeros(len(job_title))
    for name, g in groups.items():
        total += np.minimum(g, rules.fit_caps.get(name, np.inf))
    return np.clip(_round(total), 0, 50)


def event_signals(
    rules: ScoreRules,
    event_type: np.ndarray,
    event_name: np.ndarray,
    path: np.ndarray,
    form_id: np.ndarray,
) -> list[tuple[np.ndarray, str]]:
    """(row mask, signal) pairs for web events, as int_contact_signals names them: a
    page view, a key page's view, a demo request, a lead conversion (a lead form of
    seed lead_forms, or gated content), another form, a checkout started.

    Text columns hold a few distinct values: they are compared once per distinct value
    (factorised), not once per event.
    """
    out = []
    page = event_type == "page"
    out.append((page, "page_view"))
    codes, paths = pd.factorize(pd.Series(path, dtype=object), use_na_sentinel=True)
    paths = np.asarray(paths, dtype=object)
    for prefix, group in rules.key_pages:
        hit = np.array([str(x).startswith(prefix) for x in paths], dtype=bool)
        out.append((page & (codes >= 0) & hit[np.maximum(codes, 0)], f"page_view_{group}"))
    ncodes, names = pd.factorize(pd.Series(event_name, dtype=object))
    names = np.asarray(names, dtype=object)

    def named(name: str) -> np.ndarray:
        idx = np.flatnonzero(names == name)
        return (ncodes == idx[0]) if len(idx) else np.zeros(len(ncodes), dtype=bool)

    fcodes, forms = pd.factorize(pd.Series(form_id, dtype=object))
    lead_code = np.array([f in rules.lead_forms for f in forms], dtype=bool)
    is_lead_form = (fcodes >= 0) & lead_code[np.maximum(fcodes, 0)] if len(forms) else fcodes >= 0
    track = event_type == "track"
    is_form = track & named("Form Submitted")
    lead_form = is_form & is_lead_form
    out.append((track & named("Demo Requested"), "demo_requested"))
    out.append((lead_form | (track & named("Content Downloaded")), "lead_conversion"))
    out.append((is_form & ~lead_form, "form_submitted"))
    out.append((track & named("Checkout Started"), "checkout_started"))
    return out


def first_crossings(
    rules: ScoreRules,
    fit: np.ndarray,
    person: np.ndarray,
    ts: np.ndarray,
    signal: np.ndarray,
) -> np.ndarray:
    """Per person (index of ``fit``): when the score first reached the threshold.

    ``person``, ``ts``, ``signal``: every signal occurrence. The score is evaluated at
    the end (UTC midnight) of each day with a signal, counting signals before that
    midnight; the crossing's time is the last signal of that day. NaN = never.
    """
    n = len(fit)
    out = np.full(n, np.nan)
    by_signal = {r["signal"]: r for r in rules.engagement_rules}
    codes, names = pd.factorize(pd.Series(signal, dtype=object))
    names = list(names)
    wanted = np.array([x in by_signal for x in names], dtype=bool)
    keep = (codes >= 0) & wanted[np.maximum(codes, 0)] if len(names) else codes >= 0
    person, ts, signal = person[keep].astype(np.int64), ts[keep], codes[keep]
    if len(person) == 0:
        return out
    order = np.lexsort((ts, person))
    person, ts, signal = person[order], ts[order], signal[order]
    day = np.floor(ts / DAY).astype(np.int64)
    key = person * 4_000_000 + day
    new = np.r_[True, key[1:] != key[:-1]]
    last = np.r_[new[1:], True]
    cand_person = person[last]
    cand_end = (day[last] + 1).astype(float) * DAY
    cand_at = ts[last]
    # a reference time per person keeps 2 ** (t / half-life) within float range
    ref = np.full(n, np.nan)
    np.fmin.at(ref, person, ts)
    groups: dict[str, np.ndarray] = {}
    for sig, r in by_signal.items():
        if sig not in names:
            continue
        sel = signal == names.index(sig)
        if not sel.any():
            continue
        p_k, t_k = person[sel], ts[sel]
        hl = float(r["half_life_days"]) * DAY
        w = float(r["points"]) * np.exp2((t_k - ref[p_k]) / hl)
        cum = pd.Series(w).groupby(p_k).cumsum().to_numpy()
        keys = p_k * 2**32 + np.floor(t_k).astype(np.int64)
        q = cand_person * 2**32 + (cand_end.astype(np.int64) - 1)
        idx = np.searchsorted(keys, q, side="right") - 1
        safe = np.maximum(idx, 0)
        ok = (idx >= 0) & (p_k[safe] == cand_person)
        val = np.where(ok, cum[safe] * np.exp2(-(cand_end - ref[cand_person]) / hl), 0.0)
        val = np.minimum(val, float(r["max_points"]))
        g = groups.setdefault(r["rule_group"], np.zeros(len(cand_person)))
        g += val
    eng = np.zeros(len(cand_person))
    for name, g in groups.items():
        eng += np.minimum(g, rules.engagement_caps.get(name, np.inf))
    eng = np.clip(_round(eng), 0, 50)
    crossed = fit[cand_person] + eng >= rules.threshold
    hit = np.flatnonzero(crossed)
    if len(hit):
        first = hit[np.r_[True, cand_person[hit][1:] != cand_person[hit][:-1]]]
        out[cand_person[first]] = cand_at[first]
    return out
