"""The published cases the models are checked against, offline.

- BG/NBD and Gamma-Gamma on the CDNOW sample (2,357 customers of the 1997 Q1 cohort, a
  39-week calibration period): Fader, Hardie & Lee (2005), "Counting Your Customers the
  Easy(ier) Way" (r = 0.243, α = 4.414, a = 0.793, b = 2.426, LL = -9582.4) and
  "RFM and CLV" (p = 6.25, q = 3.74, γ = 15.44).
- sBG on the two segments of Fader & Hardie (2007), "How to Project Customer
  Retention": survivors of 1,000 customers at the start of years 1-8 (fit on the
  first seven renewal decisions), and the actuals of years 8-12 to project.

The CDNOW files ship inside the ``lifetimes`` wheel (a test/dev dependency). Its
``datasets`` module imports ``pkg_resources`` (gone from current setuptools), so the files
are found by path and read with pandas; nothing of ``lifetimes`` is imported.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from lifecycle.predict import bgnbd, gamma_gamma, sbg

PUBLISHED = {
    "bgnbd": {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426, "ll": -9582.4},
    "gamma_gamma": {"p": 6.25, "q": 3.74, "gamma": 15.44},
    "sbg_high_end": {"alpha": 0.668, "beta": 3.806, "ll": -1611.16},
    "sbg_regular": {"alpha": 0.704, "beta": 1.182, "ll": -1680.27},
}
#: Customers alive at the start of years 1..8 (1,000 acquired at year 0), Fader & Hardie 2007.
SURVIVORS = {
    "sbg_high_end": [1000, 869, 743, 653, 593, 551, 517, 491],
    "sbg_regular": [1000, 631, 468, 382, 326, 289, 262, 241],
}
#: Published actual survivors in years 8-12 (the holdout the projection is judged on).
ACTUAL_YEARS_8_12 = {
    "sbg_high_end": [468, 445, 427, 409, 394],
    "sbg_regular": [223, 207, 194, 183, 173],
}
CDNOW_FILES = (
    "cdnow_customers_summary.csv",
    "cdnow_customers_summary_with_transactions.csv",
    "CDNOW_sample.txt",
    "CDNOW_master.txt",
)


class LiteratureDataMissing(RuntimeError):
    """The CDNOW files are not installed (the ``lifetimes`` wheel is missing)."""


def cdnow_path(name: str) -> Path:
    """Path of one CDNOW file inside the installed ``lifetimes`` wheel (not imported)."""
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or not spec.submodule_search_locations:
        raise LiteratureDataMissing(
            "the CDNOW data ships in the `lifetimes` wheel, which is not installed: "
            "`make install` (dev extra) or `pip install lifetimes==0.11.3`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / name
    if not path.exists():
        raise LiteratureDataMissing(f"{path} is missing from the installed lifetimes wheel")
    return path


def cdnow_summary() -> pd.DataFrame:
    """Per customer of the CDNOW sample: x, t_x, T (weeks) and zbar (mean repeat spend, $)."""
    df = pd.read_csv(cdnow_path("cdnow_customers_summary_with_transactions.csv"))
    return df.rename(columns={"ID": "customer_id"})


def cdnow_master() -> pd.DataFrame:
    """Every purchase of the 23,570 customers: customer_id, date, cds, dollars."""
    return pd.read_csv(
        cdnow_path("CDNOW_master.txt"),
        sep=r"\s+",
        header=None,
        names=["customer_id", "date", "cds", "dollars"],
        dtype={"customer_id": "int64", "date": "str", "cds": "int64", "dollars": "float64"},
        skiprows=_header_rows(cdnow_path("CDNOW_master.txt")),
    ).assign(date=lambda d: pd.to_datetime(d.date, format="%Y%m%d"))


def _header_rows(path: Path) -> int:
    with open(path) as fh:
        first = fh.readline()
    return 0 if first.split()[0].isdigit() else 1


def check_literature() -> dict:
    """Refit the four published cases; the figures in the shape ``--check-literature`` prints."""
    df = cdnow_summary()
    bg = bgnbd.fit(df.x, df.t_x, df["T"])
    rep = df[df.x > 0]
    gg = gamma_gamma.fit(rep.x, rep.zbar)
    out = {
        "bgnbd": {k: round(v, 4) for k, v in bg.params.items()}
        | {"ll": round(bg.log_likelihood, 2)},
        "gamma_gamma": {k: round(v, 4) for k, v in gg.params.items()},
    }
    for case, survivors in SURVIVORS.items():
        f = sbg.fit_survivors(survivors)
        projected = 1000 * sbg.survival((f.params["alpha"], f.params["beta"]), np.arange(8, 13))
        out[case] = {
            "alpha": round(f.params["alpha"], 4),
            "beta": round(f.params["beta"], 4),
            "ll": round(f.log_likelihood, 2),
            "projected": [round(float(v), 1) for v in projected],
        }
    return out


def projection_errors(case: str, projected: list[float]) -> list[float]:
    """(projected - actual) / actual for years 8-12, as fractions."""
    actual = np.asarray(ACTUAL_YEARS_8_12[case], float)
    return ((np.asarray(projected, float) - actual) / actual).tolist()
