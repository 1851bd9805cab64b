"""Predictive lifecycle: who is alive, what they will buy and be worth, who will renew.

- :mod:`.bgnbd` BG/NBD (Fader, Hardie & Lee 2005) for repeat purchasing;
- :mod:`.gamma_gamma` the Gamma-Gamma spend model (Fader, Hardie & Lee 2005, RFM and CLV);
- :mod:`.sbg` the shifted-beta-geometric retention model (Fader & Hardie 2007);
- :mod:`.lead_score` a nightly scikit-learn lead score on point-in-time features;
- :mod:`.guards` the minimum-data rules; :mod:`.literature` the published cases;
- :mod:`.nightly` the DAG task that fits everything on the warehouse and writes
  ``predict.*`` and ``ops.predict_*``.

The likelihoods are the published ones, maximised with scipy (see docs/predictive.md for
why not pymc-marketing).
"""
