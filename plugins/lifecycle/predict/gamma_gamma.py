"""Gamma-Gamma spend per transaction (Fader, Hardie & Lee 2005, "RFM and CLV: Using
Iso-Value Curves for Customer Base Analysis", JMR 42(4); Fader & Hardie's note "The
Gamma-Gamma Model of Monetary Value", 2013).

A customer's transaction values are Gamma(p, ν) around their own mean p/ν, with
ν ~ Gamma(q, γ) across customers. Fitted on repeat customers (x > 0) from x and the
mean value m of their repeat transactions. Assumes spend is independent of frequency:
check it (:func:`frequency_spend_correlation`) before trusting a CLV.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln

from lifecycle.predict.fitting import Fit, maximise

PARAMS = ("p", "q", "gamma")


def log_likelihood(params, x: np.ndarray, m: np.ndarray) -> float:
    p, q, g = params
    px = p * x
    ll = (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(g)
        + (px - 1) * np.log(m)
        + px * np.log(x)
        - (px + q) * np.log(g + m * x)
    )
    return float(ll.sum())


def fit(x, m, start=(1.0, 1.0, 1.0)) -> Fit:
    """Maximum-likelihood p, q, γ on customers with x > 0 and m > 0."""
    x, m = np.asarray(x, float), np.asarray(m, float)
    if len(x) == 0 or (x <= 0).any() or (m <= 0).any():
        raise ValueError("Gamma-Gamma needs repeat customers (x > 0) with a positive mean spend")
    s = np.array(start, float)
    if tuple(start) == (1.0, 1.0, 1.0):
        s[2] = max(float(np.mean(m)), 1e-3)
    return maximise("gamma_gamma", PARAMS, lambda pr: -log_likelihood(pr, x, m), s, n=len(x))


def expected_spend(params, x, m) -> np.ndarray:
    """E[mean transaction value | x, m]; the population mean pγ/(q-1) where x = 0."""
    p, q, g = params
    x, m = np.asarray(x, float), np.nan_to_num(np.asarray(m, float))
    return np.where(x > 0, p * (g + m * x) / (p * x + q - 1), population_mean(params))


def population_mean(params) -> float:
    p, q, g = params
    return float(p * g / (q - 1)) if q > 1 else float("nan")


def frequency_spend_correlation(x, m) -> float:
    """Pearson correlation of x and m among repeat customers (the model assumes ~0)."""
    x, m = np.asarray(x, float), np.asarray(m, float)
    if len(x) < 3 or np.std(x) == 0 or np.std(m) == 0:
        return float("nan")
    return float(np.corrcoef(x, m)[0, 1])
