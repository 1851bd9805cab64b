"""Shifted-beta-geometric retention (Fader & Hardie 2007, "How to Project Customer
Retention", Journal of Interactive Marketing 21(1); DERL from Fader & Hardie 2010,
"Customer-Base Valuation in a Contractual Setting: The Perils of Ignoring
Heterogeneity", Marketing Science 29(1)).

Each subscriber cancels at the end of any period with their own probability θ, constant
over time; θ ~ Beta(α, β) across subscribers. A subscriber observed through ``t``
renewals who then cancelled has lifetime T = t + 1 periods; one still active after ``t``
renewals contributes S(t) = P(T > t).
"""

from __future__ import annotations

import numpy as np
from scipy.special import betaln, hyp2f1

from lifecycle.predict.fitting import Fit, maximise

PARAMS = ("alpha", "beta")


def log_p_churn(alpha: float, beta: float, t: np.ndarray) -> np.ndarray:
    """log P(T = t) = log B(α+1, β+t-1) - log B(α, β), t >= 1."""
    return betaln(alpha + 1, beta + np.asarray(t, float) - 1) - betaln(alpha, beta)


def log_survival(alpha: float, beta: float, t: np.ndarray) -> np.ndarray:
    """log S(t) = log B(α, β+t) - log B(α, β), t >= 0."""
    return betaln(alpha, beta + np.asarray(t, float)) - betaln(alpha, beta)


def log_likelihood(params, churned_at: np.ndarray, churned_n, alive_at, alive_n) -> float:
    """Σ n·log P(T = t) over observed cancellations + Σ n·log S(t) over active ones."""
    alpha, beta = params
    return float(
        np.dot(churned_n, log_p_churn(alpha, beta, churned_at))
        + np.dot(alive_n, log_survival(alpha, beta, alive_at))
    )


def from_survivors(survivors) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Counts alive at the start of periods 0..k (one cohort) as likelihood inputs."""
    s = np.asarray(survivors, float)
    t = np.arange(1, len(s))
    return t, s[:-1] - s[1:], np.array([len(s) - 1]), np.array([s[-1]])


def fit(churned_at, churned_n, alive_at, alive_n) -> Fit:
    """Maximum-likelihood α, β."""
    churned_at, churned_n = np.asarray(churned_at, float), np.asarray(churned_n, float)
    alive_at, alive_n = np.asarray(alive_at, float), np.asarray(alive_n, float)
    n = int(churned_n.sum() + alive_n.sum())
    if n == 0:
        raise ValueError("sBG needs at least one subscriber")
    return maximise(
        "sbg",
        PARAMS,
        lambda p: -log_likelihood(p, churned_at, churned_n, alive_at, alive_n),
        np.array([1.0, 1.0]),
        n=n,
    )


def fit_survivors(survivors) -> Fit:
    return fit(*from_survivors(survivors))


def survival(params, t) -> np.ndarray:
    """S(t): share of a new cohort still subscribed after t renewals."""
    alpha, beta = params
    return np.exp(log_survival(alpha, beta, np.asarray(t, float)))


def retention_rate(params, t) -> np.ndarray:
    """r(t) = S(t)/S(t-1) = (β+t-1)/(α+β+t-1): share of period t-1's survivors renewing."""
    alpha, beta = params
    t = np.asarray(t, float)
    return (beta + t - 1) / (alpha + beta + t - 1)


def derl(params, renewals, discount: float) -> np.ndarray:
    """Discounted expected residual lifetime (periods) of a subscriber active after
    ``renewals`` renewals, at ``discount`` per period (Fader & Hardie 2010, eq. 6 with
    n - 1 = renewals): the discounted count of periods still to be paid, the coming one
    included with probability of the next renewal.
    """
    alpha, beta = params
    n = np.asarray(renewals, float) + 1
    return (
        (beta + n - 1)
        / (alpha + beta + n - 1)
        * hyp2f1(1.0, beta + n, alpha + beta + n, 1.0 / (1.0 + discount))
    )
