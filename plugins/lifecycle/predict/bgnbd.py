"""BG/NBD: repeat purchasing with dropout (Fader, Hardie & Lee 2005, "Counting Your
Customers the Easy(ier) Way", Marketing Science 24(2)).

Per customer: ``x`` repeat purchases, ``t_x`` time of the last one and ``T`` the time
observed, both measured from the first purchase, in any one time unit (the nightly task
uses days, the CDNOW case weeks). While alive a customer buys at rate λ ~ Gamma(r, α);
after each purchase they drop out with probability p ~ Beta(a, b).

Formulas: the likelihood is equation (6) of the paper, P(alive) its equation (13) and the
conditional expectation its equation (10); P(a purchase within t) and the median time to
it follow from the Poisson process while alive (the next purchase comes at rate λ, whose
posterior given alive is Gamma(r + x, α + T)).
"""

from __future__ import annotations

import numpy as np
from scipy.special import betaln, gammaln, hyp2f1

from lifecycle.predict.fitting import Fit, maximise

PARAMS = ("r", "alpha", "a", "b")


def _per_x(x_unique: np.ndarray, r: float, a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    """Terms that depend on the parameters and x only (computed once per distinct x)."""
    a1 = gammaln(r + x_unique) - gammaln(r)
    a2 = betaln(a, b + x_unique) - betaln(a, b)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(x_unique > 0, np.log(a) - np.log(b + x_unique - 1), -np.inf)
    return a1 + a2, a4


def log_likelihood(
    params, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, weights: np.ndarray | None = None
) -> float:
    """Sum of per-customer log-likelihoods (optionally weighted by a count per row)."""
    r, alpha, a, b = params
    xu, inv = np.unique(x, return_inverse=True)
    base, a4 = _per_x(xu.astype(float), r, a, b)
    rx = r + x
    term3 = -rx * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        term4 = np.where(x > 0, a4[inv] - rx * np.log(alpha + t_x), -np.inf)
    ll = base[inv] + r * np.log(alpha) + np.logaddexp(term3, term4)
    return float(np.dot(ll, weights) if weights is not None else ll.sum())


def compress(x, t_x, T) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (x, t_x, T) rows and how many customers share each (same likelihood)."""
    rows = np.column_stack([np.asarray(x, float), np.asarray(t_x, float), np.asarray(T, float)])
    uniq, counts = np.unique(rows, axis=0, return_counts=True)
    return uniq[:, 0], uniq[:, 1], uniq[:, 2], counts.astype(float)


def fit(x, t_x, T, start=(1.0, 1.0, 1.0, 1.0)) -> Fit:
    """Maximum-likelihood r, α, a, b."""
    x = np.asarray(x, float)
    t_x = np.asarray(t_x, float)
    T = np.asarray(T, float)
    _check(x, t_x, T)
    cx, ct, cT, w = compress(x, t_x, T)
    # a start with α near the data's time scale converges in fewer steps
    scale = max(float(np.mean(T)) / 10.0, 1e-3)
    s = np.array(start, float)
    s[1] = s[1] * scale if tuple(start) == (1.0, 1.0, 1.0, 1.0) else s[1]
    return maximise("bgnbd", PARAMS, lambda p: -log_likelihood(p, cx, ct, cT, w), s, n=len(x))


def _check(x, t_x, T) -> None:
    if len(x) == 0:
        raise ValueError("BG/NBD needs at least one customer")
    bad = (x < 0) | (t_x < 0) | (t_x > T + 1e-9) | ((x == 0) & (t_x != 0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"BG/NBD input row {i}: x={x[i]}, t_x={t_x[i]}, T={T[i]}; expected x >= 0, "
            "0 <= t_x <= T, and t_x = 0 when x = 0"
        )


def p_alive(params, x, t_x, T) -> np.ndarray:
    """P(still alive at T | x, t_x, T): 1 for a customer with no repeat purchase."""
    r, alpha, a, b = params
    x, t_x, T = (np.asarray(v, float) for v in (x, t_x, T))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_ratio = (
            np.log(a) - np.log(b + x - 1) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
        )
        out = 1.0 / (1.0 + np.exp(log_ratio))
    return np.where(x > 0, out, 1.0)


def expected_purchases(params, t, x, t_x, T) -> np.ndarray:
    """E[purchases in (T, T + t] | x, t_x, T] (equation 10)."""
    r, alpha, a, b = params
    x, t_x, T = (np.asarray(v, float) for v in (x, t_x, T))
    t = np.asarray(t, float)
    z = t / (alpha + T + t)
    hyp = hyp2f1(r + x, b + x, a + b + x - 1, z)
    num = (a + b + x - 1) / (a - 1) * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp)
    with np.errstate(over="ignore", divide="ignore"):
        den = 1 + np.where(x > 0, a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x), 0.0)
    return num / den


def expected_purchases_new(params, t) -> np.ndarray:
    """E[X(t)] for a customer just acquired (equation 7): the tracking curve."""
    r, alpha, a, b = params
    t = np.asarray(t, float)
    hyp = hyp2f1(r, b, a + b - 1, t / (alpha + t))
    return (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t)) ** r * hyp)


def p_purchase_within(params, t, x, t_x, T) -> np.ndarray:
    """P(at least one purchase in (T, T + t] | x, t_x, T).

    Alive at T, the next purchase comes at rate λ (dropout only follows a purchase), and
    given the history λ ~ Gamma(r + x, α + T): P(none in t | alive) = ((α+T)/(α+T+t))^(r+x).
    """
    r, alpha, _, _ = params
    x, T = np.asarray(x, float), np.asarray(T, float)
    none_if_alive = ((alpha + T) / (alpha + T + np.asarray(t, float))) ** (r + x)
    return p_alive(params, x, t_x, T) * (1.0 - none_if_alive)


def median_time_to_next(params, x, t_x, T) -> np.ndarray:
    """Time from T until P(a purchase by then) reaches 1/2; NaN when P(alive) <= 1/2
    (more likely gone than not: no date is more likely than none)."""
    r, alpha, _, _ = params
    x, T = np.asarray(x, float), np.asarray(T, float)
    pa = p_alive(params, x, t_x, T)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (alpha + T) * ((1.0 - 0.5 / pa) ** (-1.0 / (r + x)) - 1.0)
    return np.where(pa > 0.5, t, np.nan)
