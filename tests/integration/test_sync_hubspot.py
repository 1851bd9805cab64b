"""HubSpot write-back against a portal with custom lifecycle options, over HTTP.

Finding 3 of issue 10: a churned customer was written ``lifecyclestage = other`` (a
portal may not have that option, and moving a customer out of ``customer`` destroys
sales' record of the purchase). Lapsed and churned belong in a property of our own.
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import pandas as pd
import pytest

from lifecycle.activation import engine
from lifecycle.activation.audiences import load
from lifecycle.sandbox.hubspot import records as hubspot_records

T0 = datetime(2026, 7, 1, 3, 0)
YML = """
audiences:
  writeback:
    model: aud_writeback
    identifiers: [email]
    guards: {max_attempts: 2, retry_backoff_minutes: 0}
    destinations:
      hubspot:
        properties:
          lifecyclestage: lifecycle_stage
          lifecycle_lead_score: lead_score
        numeric_properties: [lifecycle_lead_score]
"""


@pytest.fixture()
def wh(tmp_path):
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield con
    con.close()


@pytest.fixture()
def spec(tmp_path):
    path = tmp_path / "audiences.yml"
    path.write_text(YML)
    return {(s.audience, s.destination): s for s in load(path)}[("writeback", "hubspot")]


def put(con, frame: pd.DataFrame) -> None:
    con.execute("create schema if not exists audiences")
    con.register("frame", frame)
    con.execute("create or replace table audiences.aud_writeback as select * from frame")
    con.unregister("frame")


def portal(srv) -> dict:
    return srv.app.state.sandbox.__dict__["destinations"]["hubspot"]


@pytest.mark.xfail(strict=True, reason="finding 3: churned is written as lifecyclestage=other")
def test_churned_customer_stays_customer_and_gets_lifecycle_state(sandbox, wh, spec):
    contacts = hubspot_records.contacts(sandbox.world, sandbox.world.now_ts)
    customers = [c for c in contacts if c["properties"]["lifecyclestage"] == "customer"][:2]
    assert len(customers) == 2
    frame = pd.DataFrame(
        {
            "contact_id": [str(c["id"]) for c in customers],
            "email": [c["properties"]["email"] for c in customers],
            "lifecycle_stage": ["churned", "lapsed"],
            "hubspot_lifecycle_stage": ["customer", "customer"],
            "lead_score": [10.0, 20.0],
        }
    )
    put(wh, frame)
    result = engine.run(wh, spec, engine.destination("hubspot"), now=T0)
    assert result["status"] == "success"
    held = portal(sandbox)["contacts"]
    churned, lapsed = (held[str(c["id"])] for c in customers)
    assert churned["lifecyclestage"] == "customer"
    assert lapsed["lifecyclestage"] == "customer"
    assert churned.get("lifecycle_state") == "churned"
    assert lapsed.get("lifecycle_state") == "lapsed"
