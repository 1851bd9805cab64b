"""1% churn on an audience larger than Meta's 10,000 rows per call sends only the changes.

Over real HTTP against the Meta emulator, on a real DuckDB: 12,000 members (two calls
for the first sync), an unchanged re-run (no call at all), then 1% leave and 1% join.
The rows the emulator received are compared with rows hashed here with ``hashlib`` from
values normalised by hand (Meta "Customer File Custom Audiences", "Hashing and
Normalizing Data": email trimmed and lowercased).

Email only: a 10,000-row call with a second hashed identifier exceeds the emulator's
1 MB form-field limit (its web framework's default, not a limit Meta documents).
"""

from __future__ import annotations

import hashlib

import duckdb
import pandas as pd
import pytest
from sync_support import put_audience, received, sync

from lifecycle.activation.audiences import load

N = 12_000  # above Meta's 10,000 rows per call
YML = """
audiences:
  big:
    model: aud_big
    identifiers: [email]
    guards: {require_quality_gate: false}
    destinations:
      meta: {audience_id: "4242", mode: mirror}
"""


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def frame(ids) -> pd.DataFrame:
    ids = list(ids)
    return pd.DataFrame(
        {
            "contact_id": [str(i) for i in ids],
            "email": [f"  Member.{i}@Example.COM " for i in ids],
            "country_code": "us",
            "has_email_consent": True,
            "has_ad_consent": True,
            "email_status": "subscribed",
        }
    )


def row(i: int) -> tuple[str]:
    """The Meta row (schema EMAIL) of member ``i``, normalised by hand."""
    return (sha(f"member.{i}@example.com"),)


@pytest.fixture()
def wh(tmp_path):
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield con
    con.close()


def test_one_percent_churn_above_the_batch_limit_sends_exactly_the_changed_rows(
    sandbox, wh, tmp_path
):
    (tmp_path / "audiences.yml").write_text(YML)
    (spec,) = load(tmp_path / "audiences.yml")
    put_audience(wh, "aud_big", frame(range(N)))

    first = sync(wh, spec)
    calls = received(sandbox, "meta")
    assert (first["status"], first["sent"], first["accepted"]) == ("success", N, N)
    assert [(c["method"], len(c["data"])) for c in calls] == [("POST", 10_000), ("POST", 2_000)]
    assert {tuple(r) for c in calls for r in c["data"]} == {row(i) for i in range(N)}

    again = sync(wh, spec)
    assert (again["sent"], again["status"]) == (0, "success")
    assert len(received(sandbox, "meta")) == len(calls)  # no call at all

    leave = range(0, N // 100)  # 120 leave
    join = range(N, N + N // 100)  # 120 join
    stay = range(N // 100, N)
    put_audience(wh, "aud_big", frame([*stay, *join]))

    churn = sync(wh, spec)
    assert (churn["planned_adds"], churn["planned_updates"], churn["planned_removes"]) == (
        len(join),
        0,
        len(leave),
    )
    new_calls = received(sandbox, "meta")[len(calls) :]
    deleted = [tuple(r) for c in new_calls if c["method"] == "DELETE" for r in c["data"]]
    posted = [tuple(r) for c in new_calls if c["method"] == "POST" for r in c["data"]]
    assert sorted(deleted) == sorted(row(i) for i in leave)
    assert sorted(posted) == sorted(row(i) for i in join)
    assert churn["sent"] == len(deleted) + len(posted) == 2 * N // 100

    members = {tuple(m) for m in sandbox.app.state.sandbox.meta_audiences["4242"]}
    assert members == {row(i) for i in [*stay, *join]}
