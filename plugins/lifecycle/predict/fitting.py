"""Maximum-likelihood fitting shared by the models: positive parameters on a log scale."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize


@dataclass(frozen=True)
class Fit:
    """A fitted model: parameters, log-likelihood and how the optimiser ended."""

    model: str
    params: dict[str, float]
    log_likelihood: float
    converged: bool
    iterations: int
    n: int
    seconds: float
    message: str = ""
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "model": self.model,
            "params": {k: float(v) for k, v in self.params.items()},
            "log_likelihood": float(self.log_likelihood),
            "converged": bool(self.converged),
            "iterations": int(self.iterations),
            "n": int(self.n),
            "seconds": round(float(self.seconds), 3),
            "message": self.message,
        }


def maximise(
    model: str,
    names: tuple[str, ...],
    neg_ll: Callable[[np.ndarray], float],
    start: np.ndarray,
    n: int,
) -> Fit:
    """Minimise ``neg_ll(params)`` over positive params (optimised as their logs).

    L-BFGS-B first; if it stops without converging, Nelder-Mead from where it stopped.
    """
    t0 = time.perf_counter()

    def objective(log_params: np.ndarray) -> float:
        value = neg_ll(np.exp(log_params))
        return value if np.isfinite(value) else 1e300

    x0 = np.log(np.asarray(start, dtype=float))
    res = minimize(objective, x0, method="L-BFGS-B", bounds=[(-12.0, 12.0)] * len(x0))
    iterations = int(res.nit)
    if not res.success:
        res = minimize(
            objective, res.x, method="Nelder-Mead", options={"xatol": 1e-7, "fatol": 1e-7}
        )
        iterations += int(res.nit)
    params = dict(zip(names, np.exp(res.x).tolist(), strict=True))
    # a parameter at a bound (e^±12) means the likelihood keeps rising towards a limit
    # (e.g. a, b -> infinity: no heterogeneity in dropout); the predictions at the bound
    # are that limit's, so the fit stands, and the message says so in ops.predict_fits
    at_bound = bool(np.any(np.abs(res.x) > 11.9))
    return Fit(
        model=model,
        params=params,
        log_likelihood=-float(res.fun),
        converged=bool(res.success),
        iterations=iterations,
        n=n,
        seconds=time.perf_counter() - t0,
        message=("parameter at its bound; " if at_bound else "") + str(res.message),
    )
