"""`lifecycle predict` describes its marts and fails clearly without a warehouse."""

from __future__ import annotations

import pytest

from lifecycle.cli import main


def test_help_names_every_mart_and_the_guard(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["predict", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in (
        "dim_customer_predictions",
        "fct_subscription_retention",
        "dim_subscriber_predictions",
        "dim_lead_predictions",
        "fct_ltv_cac_by_channel",
        "aud_at_risk_high_value",
        "ops.predict_fits",
        "insufficient_data",
        "--check-literature",
    ):
        assert name in out, name


@pytest.mark.parametrize("extra", [[], ["--report"]])
def test_without_a_warehouse_it_says_what_to_do(tmp_path, monkeypatch, capsys, extra):
    monkeypatch.setenv("LIFECYCLE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("LIFECYCLE_WAREHOUSE_PATH", raising=False)
    assert main(["predict", *extra]) == 2
    assert "no warehouse at" in capsys.readouterr().err
