"""Settings and minimum-data rules of the predictive models, from their seeds.

The seeds (``dbt_project/seeds/predict_settings.csv``, ``predict_minimum_data.csv``,
``churn_risk_bands.csv``) are the one home of these numbers: dbt loads them for the marts
and this module reads the same files for the Python task. Below a minimum the marts say
``insufficient_data`` and carry no number.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from lifecycle.config import settings

OK = "ok"
INSUFFICIENT = "insufficient_data"
#: Environment overrides of predict_settings (e.g. the CDNOW replay's 39-week holdout).
ENV_PREFIX = "LIFECYCLE_PREDICT_"


def _seed(name: str) -> list[dict]:
    path = settings().dbt_project_dir / "seeds" / name
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def predict_settings(overrides: dict[str, float] | None = None) -> dict[str, float]:
    """``setting -> value`` from the seed, then ``LIFECYCLE_PREDICT_<SETTING>``, then
    ``overrides`` (CLI flags)."""
    out = {row["setting"]: float(row["value"]) for row in _seed("predict_settings.csv")}
    for key in list(out):
        env = os.environ.get(ENV_PREFIX + key.upper())
        if env not in (None, ""):
            out[key] = float(env)
    for key, value in (overrides or {}).items():
        if key not in out:
            raise KeyError(f"unknown predict setting {key!r}; known: {', '.join(sorted(out))}")
        if value is not None:
            out[key] = float(value)
    return out


def minimum_data(model: str) -> dict[str, float]:
    rows = [r for r in _seed("predict_minimum_data.csv") if r["model"] == model]
    if not rows:
        raise KeyError(f"no minimum-data rules for model {model!r} in predict_minimum_data.csv")
    return {r["rule"]: float(r["threshold"]) for r in rows}


@dataclass(frozen=True)
class Verdict:
    """Whether a model may speak, and if not, which rules failed (with the figures)."""

    status: str
    failed: tuple[str, ...]
    figures: dict[str, float]

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def reason(self) -> str | None:
        return "; ".join(self.failed) or None


def judge(figures: dict[str, float], rules: dict[str, float]) -> Verdict:
    """Compare ``figures`` with ``rules``: ``min_*`` are lower bounds, ``max_*`` upper."""
    failed = []
    for rule, threshold in rules.items():
        name = rule.removeprefix("min_").removeprefix("max_")
        value = figures.get(name)
        if value is None:
            continue
        if rule.startswith("min_") and value < threshold:
            failed.append(f"{name} {value:g} < {threshold:g}")
        elif rule.startswith("max_") and value > threshold:
            failed.append(f"{name} {value:g} > {threshold:g}")
    return Verdict(INSUFFICIENT if failed else OK, tuple(failed), dict(figures))


def seed_path(name: str) -> Path:
    return settings().dbt_project_dir / "seeds" / name
