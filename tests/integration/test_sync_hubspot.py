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
import requests

from lifecycle.activation import engine
from lifecycle.activation.audiences import load
from lifecycle.sandbox.hubspot import records as hubspot_records
from lifecycle.sandbox.state import HUBSPOT_TOKEN

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
    # lifecycle_state was created as a property of its own, an enumeration of the states
    created = [c["body"] for c in calls(sandbox) if c["call"] == "create_property"]
    state = next(b for b in created if b["name"] == "lifecycle_state")
    assert state["type"] == "enumeration"
    assert {o["value"] for o in state["options"]} == {"lapsed", "churned"}
    # and lifecyclestage was never part of the write for the two
    writes = [i for c in calls(sandbox) if c["call"] == "batch_update" for i in c["body"]["inputs"]]
    assert all("lifecyclestage" not in i["properties"] for i in writes)


def calls(srv) -> list[dict]:
    return requests.get(f"{srv.base_url}/_sandbox/received/hubspot", timeout=10).json()["calls"]


def frame_for(srv, stages: list[str], current: str | None = None) -> pd.DataFrame:
    contacts = hubspot_records.contacts(srv.world, srv.world.now_ts)
    picked = [
        c for c in contacts if current is None or c["properties"]["lifecyclestage"] == current
    ][: len(stages)]
    assert len(picked) == len(stages)
    return pd.DataFrame(
        {
            "contact_id": [str(c["id"]) for c in picked],
            "email": [c["properties"]["email"] for c in picked],
            "lifecycle_stage": stages,
            "hubspot_lifecycle_stage": [c["properties"]["lifecyclestage"] for c in picked],
            "lead_score": [1.0] * len(stages),
        }
    )


def test_stages_map_to_the_portals_own_options_read_from_the_properties_api(sandbox, wh, spec):
    frame = frame_for(sandbox, ["mql", "mql"], current="subscriber")
    put(wh, frame)
    assert engine.run(wh, spec, engine.destination("hubspot"), now=T0)["status"] == "success"
    held = portal(sandbox)["contacts"]
    options = {
        o["label"]: o["value"] for o in portal(sandbox)["properties"]["lifecyclestage"]["options"]
    }
    # this portal's MQL option has an id as its internal name: that id is written
    assert options["Marketing Qualified Lead"] != "marketingqualifiedlead"
    assert {held[c]["lifecyclestage"] for c in frame.contact_id} == {
        options["Marketing Qualified Lead"]
    }


def test_a_stage_the_portal_lacks_is_never_written_and_the_sync_says_which(sandbox, wh, spec):
    frame = frame_for(sandbox, ["advocate", "advocate", "sql"], current="subscriber")
    put(wh, frame)
    # the portal's evangelist option is gone (as in a portal that customised it away)
    prop = portal_store(sandbox)["properties"]["lifecyclestage"]
    prop["options"] = [o for o in prop["options"] if o["label"] != "Evangelist"]
    before = {c: portal(sandbox)["contacts"][c]["lifecyclestage"] for c in frame.contact_id}
    result = engine.run(wh, spec, engine.destination("hubspot"), now=T0)
    assert result["status"] == "success"
    warning = next(w for w in result["warnings"] if "advocate" in w)
    assert "seed hubspot_stage 'evangelist'" in warning
    assert "not written for 2 contacts" in warning
    stored = wh.execute(
        "select warnings from ops.sync_runs where sync_run_id = ?", [result["sync_run_id"]]
    ).fetchall()[0][0]
    assert "advocate" in stored
    held = portal(sandbox)["contacts"]
    advocates, sql = list(frame.contact_id[:2]), frame.contact_id.iloc[2]
    assert [held[c]["lifecyclestage"] for c in advocates] == [before[c] for c in advocates]
    assert held[sql]["lifecyclestage"] == "salesqualifiedlead"
    writes = [i for c in calls(sandbox) if c["call"] == "batch_update" for i in c["body"]["inputs"]]
    assert all("lifecyclestage" not in i["properties"] for i in writes if i["id"] in advocates)


def portal_store(srv) -> dict:
    state = srv.app.state.sandbox
    if "hubspot" not in state.__dict__.get("destinations", {}):
        requests.get(
            f"{srv.base_url}/hubspot/crm/v3/properties/contacts",
            headers={"Authorization": f"Bearer {HUBSPOT_TOKEN}"},
            timeout=10,
        )
    return portal(srv)


def test_emulator_refuses_an_option_the_portal_lacks_with_hubspots_400(sandbox):
    contact = hubspot_records.contacts(sandbox.world, sandbox.world.now_ts)[0]
    r = requests.post(
        f"{sandbox.base_url}/hubspot/crm/v3/objects/contacts/batch/update",
        headers={"Authorization": f"Bearer {HUBSPOT_TOKEN}"},
        json={"inputs": [{"id": str(contact["id"]), "properties": {"lifecyclestage": "other"}}]},
        timeout=10,
    )
    assert r.status_code == 400
    body = r.json()
    assert body["category"] == "VALIDATION_ERROR"
    assert '"error":"INVALID_OPTION","name":"lifecyclestage"' in body["message"]
    assert "other was not one of the allowed options" in body["message"]
    options = requests.get(
        f"{sandbox.base_url}/hubspot/crm/v3/properties/contacts/lifecyclestage",
        headers={"Authorization": f"Bearer {HUBSPOT_TOKEN}"},
        timeout=10,
    ).json()["options"]
    assert "other" not in {o["value"] for o in options}
    assert portal(sandbox)["contacts"][str(contact["id"])]["lifecyclestage"] != "other"
