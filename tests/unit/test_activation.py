"""audiences.yml validation from the registry, exposures, the HubSpot stage rule, Google parsing."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lifecycle.activation import registry
from lifecycle.activation.audiences import AudienceConfigError, load, manifest_models
from lifecycle.activation.base import Destination
from lifecycle.activation.google_ads import _partial_failures, match_rate
from lifecycle.activation.hubspot import seed_stages, stage_move

ROOT = Path(__file__).resolve().parents[2]
GOOD = {
    "audiences": {
        "vip": {
            "model": "aud_vip",
            "identifiers": ["email", "phone"],
            "destinations": {
                "meta": {"audience_id": "1", "mode": "mirror"},
                "mailchimp": {"list_id": "l1", "tag": "vip"},
            },
        }
    }
}


def write(tmp_path, doc) -> Path:
    p = tmp_path / "audiences.yml"
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    return p


def with_(path: list, value):
    import copy

    doc = copy.deepcopy(GOOD)
    node = doc["audiences"]["vip"]
    for key in path[:-1]:
        node = node[key]
    if value is None:
        node.pop(path[-1])
    else:
        node[path[-1]] = value
    return doc


def test_good_file_gives_one_sync_per_destination_with_defaults(tmp_path):
    syncs = load(write(tmp_path, GOOD), known_models={"aud_vip"})
    assert [(s.audience, s.destination, s.mode, s.channel) for s in syncs] == [
        ("vip", "meta", "mirror", "ads"),
        ("vip", "mailchimp", "upsert", "email"),
    ]
    assert syncs[0].primary_key == "contact_id"
    assert syncs[0].max_removal_pct == 20.0
    assert "mode" not in syncs[0].target


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            ["model"],
            "aud_nope",
            "unknown dbt model 'aud_nope' (audience models in the manifest: aud_vip)",
        ),
        (["destinations", "tiktok"], {"mode": "upsert"}, "unknown destination 'tiktok'"),
        (["identifiers"], ["first_name"], "missing identifier: meta matches on email or phone"),
        (["identifiers"], ["email", "ssn"], "unknown identifier(s) ssn"),
        (["identifiers"], None, "has no 'identifiers'"),
        (
            ["destinations", "meta", "mode"],
            "sync",
            "mode 'sync' is not one of add_only, mirror, upsert",
        ),
        (["destinations", "meta", "audience_id"], None, "meta: target needs audience_id"),
        (["guards"], {"max_removal_pct": 150}, "max_removal_pct must be within 0-100"),
        (["guards"], {"max_removals": 5}, "unknown guard 'max_removals'"),
        (["model"], None, "has no 'model'"),
        (["destinations", "meta", "audiance_id"], "1", "unknown target key(s) audiance_id"),
        (["destinations", "meta", "schema"], ["EMAIL", "SSN"], "schema ['SSN'] is not"),
        (
            ["destinations", "mailchimp", "new_member_status"],
            "subscribed_please",
            "new_member_status must be one of subscribed, pending",
        ),
        (["destinations", "mailchimp", "tag"], None, "mailchimp: target needs tag"),
        (
            ["destinations", "hubspot"],
            {
                "properties": {"lifecyclestage": "lifecycle_stage"},
                "allow_backward": ["customer>lead"],
            },
            "never moved out of 'customer'",
        ),
    ],
)
def test_invalid_declarations_name_the_problem(tmp_path, path, value, message):
    with pytest.raises(AudienceConfigError) as err:
        load(write(tmp_path, with_(path, value)), known_models={"aud_vip"})
    assert message in str(err.value)
    assert "audience 'vip'" in str(err.value)


def test_manifest_models_reads_model_nodes(tmp_path):
    assert manifest_models(tmp_path / "missing.json") is None
    (tmp_path / "m.json").write_text(
        '{"nodes": {"model.x.aud_a": {"resource_type": "model", "name": "aud_a"},'
        ' "test.x.t": {"resource_type": "test", "name": "t"}}}'
    )
    assert manifest_models(tmp_path / "m.json") == {"aud_a"}


def test_project_audiences_are_valid_and_every_sync_is_a_dbt_exposure(dbt_manifest):
    syncs = load(ROOT / "include" / "audiences.yml", manifest_models(dbt_manifest))
    doc = yaml.safe_load((ROOT / "dbt_project/models/marts/audiences/_exposures.yml").read_text())
    exposures = {e["name"]: e for e in doc["exposures"]}
    for s in syncs:
        exposure = exposures[f"{s.audience}_to_{s.destination}"]
        assert exposure["depends_on"] == [f"ref('{s.model}')"]
    import json

    nodes = json.loads(dbt_manifest.read_text())["exposures"]
    assert {n["name"] for n in nodes.values()} == set(exposures)


#: a portal's options in display order, with an id as one internal name
ORDER = {v: i for i, v in enumerate(["lead", "9001", "opportunity", "customer", "9002"])}


@pytest.mark.parametrize(
    ("current", "wanted", "allowed", "move"),
    [
        ("lead", "9001", set(), "set"),
        ("9001", "9001", set(), "set"),
        ("opportunity", "9001", set(), "hold"),
        ("opportunity", "9001", {"opportunity>9001"}, "clear_then_set"),
        ("opportunity", "lead", {"opportunity>9001"}, "hold"),
        ("customer", "9001", {"customer>9001"}, "hold"),  # never out of customer
        ("customer", "9002", set(), "set"),
        (None, "lead", set(), "set"),
        ("", "customer", set(), "set"),
        ("not-an-option", "lead", set(), "set"),
    ],
)
def test_hubspot_lifecycle_stage_moves_forward_only_in_the_portals_order(
    current, wanted, allowed, move
):
    assert stage_move(current, wanted, allowed, ORDER) == move


def test_hubspot_reads_the_stage_seed_itself(tmp_path):
    """The write-back's mapping is the seed file (Contract D), not a copy in Python."""
    seed = tmp_path / "stages.csv"
    seed.write_text(
        "stage,stage_order,stage_kind,hubspot_stage,min_orders,description\n"
        "mql,3,forward,marketingqualifiedlead,,x\nchurned,11,state,other,,y\n"
    )
    stages = seed_stages(seed)
    assert stages["mql"]["hubspot_stage"] == "marketingqualifiedlead"
    assert stages["churned"]["stage_kind"] == "state"
    project = seed_stages()
    rows = (ROOT / "dbt_project/seeds/lifecycle_stages.csv").read_text().splitlines()[1:]
    assert set(project) == {r.split(",")[0] for r in rows}


def test_every_destination_declares_what_the_rest_reads():
    purposes = {"email_marketing", "ad_user_data", "ad_personalization"}
    assert registry.names() == ["meta", "google_ads", "mailchimp", "hubspot"]
    for cls in registry.DESTINATIONS:
        assert issubclass(cls, Destination)
        assert cls.channel in ("ads", "email", "crm")
        assert cls.target_keys and set(cls.purposes) <= purposes
        assert cls.match_on <= cls.identifiers or not cls.match_on
    assert registry.get("google_ads").purposes == ("ad_user_data", "ad_personalization")
    assert registry.get("mailchimp").purposes == ("email_marketing",)
    assert registry.get("hubspot").purposes == ()
    assert registry.get("google_ads").asynchronous


def test_validation_reads_the_registry_so_a_new_destination_is_one_class(tmp_path, monkeypatch):
    class Pinterest(Destination):
        name = "pinterest"
        channel = "ads"
        target_keys = ("ad_account_id", "audience_id")
        identifiers = frozenset({"email"})
        match_on = frozenset({"email"})
        purposes = ("ad_user_data",)

    monkeypatch.setattr(registry, "DESTINATIONS", (*registry.DESTINATIONS, Pinterest))
    monkeypatch.setattr(registry, "_BY_NAME", {c.name: c for c in registry.DESTINATIONS})
    doc = {
        "audiences": {
            "vip": {
                "model": "aud_vip",
                "identifiers": ["email"],
                "destinations": {"pinterest": {"ad_account_id": "1", "audience_id": "2"}},
            }
        }
    }
    (s,) = load(write(tmp_path, doc))
    assert (s.destination, s.channel, s.purposes) == ("pinterest", "ads", ("ad_user_data",))
    doc["audiences"]["vip"]["destinations"]["pinterest"].pop("audience_id")
    with pytest.raises(AudienceConfigError, match="pinterest: target needs audience_id"):
        load(write(tmp_path, doc))


def test_google_match_rate_and_partial_failure_parsing():
    assert match_rate("MATCH_RANGE_51_TO_60") == pytest.approx(0.555)
    assert match_rate("MATCH_RANGE_LESS_THAN_20") == pytest.approx(0.1)
    assert match_rate(None) is None
    body = {
        "partialFailureError": {
            "details": [
                {
                    "errors": [
                        {
                            "errorCode": {"offlineUserDataJobError": "INVALID_SHA256_FORMAT"},
                            "message": "bad hash",
                            "location": {
                                "fieldPathElements": [{"fieldName": "operations", "index": 3}]
                            },
                        }
                    ]
                }
            ]
        }
    }
    assert _partial_failures(body) == {3: "offlineUserDataJobError=INVALID_SHA256_FORMAT: bad hash"}
    assert _partial_failures({}) == {}
