"""Erasure propagation (Contract B): every destination receives the removal.

``ops.erasures`` (recorded by the warehouse side, ``lifecycle.erasure``) holds one row per
erasure with only hashes: ``email_sha256`` (sha256 hex of the trimmed, lowercased email)
and ``contact_id_sha256`` (sha256 hex of the HubSpot contact id as text). For every
erasure not yet ``propagated``, :func:`propagate`

1. finds the person's members in ``ops.audience_membership``: rows whose
   ``sha256(contact_id)`` matches, or whose payload carries the email hash (each
   destination class names the payload field that holds the email: Meta's hashed
   ``EMAIL``, Mailchimp's ``email_address``), and then every row of the contact ids found;
2. sends the removal through each destination class of the registry
   (``Destination.erase``): Meta ``DELETE /{audience_id}/users``, Google Ads an offline
   user data job of ``remove`` operations (asynchronous: finished by
   :func:`lifecycle.activation.engine.finish_jobs`), Mailchimp a permanent delete for a
   data-subject request and an archive otherwise, HubSpot a GDPR delete for origin
   ``request`` only (``Destination.erases``);
3. drops their membership and rejection state and replaces their plain ids in
   ``ops.sync_changes`` (``contact_id`` null, ``member_key`` ``erased:<erasure_id>``);
4. logs one row per (erasure, destination) in ``ops.erasure_deliveries`` — ``delivered``,
   ``submitted`` (a vendor job runs), ``failed`` (kept for the next night: the state needed
   to resend is kept too), ``waiting`` (the person is inside a sync job still running at
   the vendor: removed the next night, once it ended), ``skipped`` (the destination does
   not take this origin) or ``not_a_member`` — and sets ``ops.erasures.status``:
   ``propagated`` when every destination is delivered, skipped or not a member, else
   ``partial``.

No plain identifier is logged. It runs every night in the DAG's ``activate`` group
(before the syncs) and from ``lifecycle forget``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from datetime import datetime

import duckdb

from lifecycle.activation import registry, store
from lifecycle.activation.base import Destination, Member

log = logging.getLogger(__name__)

FINAL = ("delivered", "skipped", "not_a_member")


def _load_syncs():
    from lifecycle.activation.audiences import load, manifest_models  # noqa: PLC0415
    from lifecycle.config import settings  # noqa: PLC0415

    s = settings()
    return load(
        s.include_dir / "audiences.yml", manifest_models(s.dbt_target_dir / "manifest.json")
    )


def _email_match_sql(destination: str, column: str = "payload") -> str | None:
    """SQL expression: the email hash held in a membership payload of ``destination``."""
    field = registry.get(destination).payload_email
    if not field:
        return None
    name, form = field
    value = f"json_extract_string({column}, '$.{name}')"
    return value if form == "sha256" else f"sha256(lower(trim({value})))"


def pending(con, erasure_ids=None) -> list[dict]:
    """Erasures not yet propagated (all, or those of ``erasure_ids``)."""
    if not store.table_exists(con, "ops", "erasures"):
        return []
    sql = (
        "select erasure_id, origin, email_sha256, contact_id_sha256, status "
        "from ops.erasures where coalesce(status, 'recorded') <> 'propagated'"
    )
    params: list = []
    if erasure_ids is not None:
        ids = list(erasure_ids)
        if not ids:
            return []
        sql += f" and erasure_id in ({', '.join('?' * len(ids))})"
        params = ids
    cur = con.execute(sql + " order by requested_at, erasure_id", params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _in_flight(con, found: dict[str, set[str]], todo: list[dict]) -> dict[str, set[str]]:
    """Per erasure, the destinations where the person is inside a job not ended yet."""
    out: dict[str, set[str]] = {e["erasure_id"]: set() for e in todo}
    by_hash = {e["contact_id_sha256"]: e["erasure_id"] for e in todo if e["contact_id_sha256"]}
    by_id = {c: eid for eid, ids in found.items() for c in ids}
    for row in store.running_jobs(con):
        if row["kind"] != "sync":
            continue
        for m in store.members_from_json(row["members"]):
            cid = str(m.contact_id)
            eid = by_id.get(cid) or by_hash.get(hashlib.sha256(cid.encode()).hexdigest())
            if eid:
                out[eid].add(row["destination"])
    return out


def _matches(con, todo: list[dict]) -> dict[str, tuple[set[str], list[tuple]]]:
    """Per erasure: the person's plain contact ids and membership rows.

    Rows are ``(audience, destination, member_key, contact_id, payload)``. One pass per
    table for all pending erasures (hash joins in DuckDB), not one per erasure.
    """
    import pandas as pd  # noqa: PLC0415

    pend = pd.DataFrame(
        {
            "erasure_id": [e["erasure_id"] for e in todo],
            "email_sha256": [e["email_sha256"] for e in todo],
            "contact_id_sha256": [e["contact_id_sha256"] for e in todo],
        }
    )
    found: dict[str, set[str]] = {e["erasure_id"]: set() for e in todo}
    rows: dict[str, list[tuple]] = {e["erasure_id"]: [] for e in todo}
    con.register("pending_erasures", pend)
    try:
        for table in ("audience_membership", "sync_rejections", "sync_changes"):
            for eid, cid in con.execute(
                f"""select p.erasure_id, t.contact_id
                    from (select distinct contact_id from ops.{table}
                          where contact_id is not null) t
                    join pending_erasures p on p.contact_id_sha256 = sha256(t.contact_id)"""
            ).fetchall():
                found[eid].add(cid)
        for name in registry.names():
            expr = _email_match_sql(name, "m.payload")
            if expr is None:
                continue
            for eid, *row in con.execute(
                f"""select p.erasure_id, m.audience, m.destination, m.member_key,
                           m.contact_id, m.payload
                    from ops.audience_membership m
                    join pending_erasures p on p.email_sha256 = {expr}
                    where m.destination = ?""",
                [name],
            ).fetchall():
                rows[eid].append(tuple(row))
                if row[3] is not None:
                    found[eid].add(row[3])
        ids = pd.DataFrame(
            [(eid, c) for eid, cs in found.items() for c in cs], columns=["erasure_id", "cid"]
        )
        if len(ids):
            con.register("found_contacts", ids)
            try:
                for eid, *row in con.execute(
                    """select f.erasure_id, m.audience, m.destination, m.member_key,
                              m.contact_id, m.payload
                       from ops.audience_membership m
                       join found_contacts f on f.cid = m.contact_id"""
                ).fetchall():
                    rows[eid].append(tuple(row))
            finally:
                con.unregister("found_contacts")
    finally:
        con.unregister("pending_erasures")
    return {eid: (found[eid], list(dict.fromkeys(rows[eid]))) for eid in found}


def propagate(
    con: duckdb.DuckDBPyConnection,
    erasure_ids=None,
    *,
    syncs=None,
    now: datetime | None = None,
) -> list[dict]:
    """Send every pending erasure to every destination; one dict per (erasure, destination)."""
    store.ensure(con)
    now = now or store.now()
    todo = pending(con, erasure_ids)
    if not todo:
        log.info("erasures: nothing to propagate")
        return []
    syncs = syncs if syncs is not None else _load_syncs()
    specs = {(s.audience, s.destination): s for s in syncs}
    delivered = con.execute(
        "select erasure_id, destination, status, job_id from ops.erasure_deliveries"
    ).fetchall()
    done = {(e, d): st for e, d, st, _ in delivered}
    failed_jobs = {(e, d): j for e, d, st, j in delivered if st == "failed" and j}
    # who is where: (destination, audience) -> [(erasure, Member)]
    found = _matches(con, todo)
    work: dict[tuple[str, str], list[tuple[dict, Member]]] = defaultdict(list)
    waiting = _in_flight(con, {eid: ids for eid, (ids, _) in found.items()}, todo)
    for e in todo:
        contact_ids, rows = found[e["erasure_id"]]
        for aud, dest, key, cid, payload in rows:
            if done.get((e["erasure_id"], dest)) in FINAL:
                continue
            body = json.loads(payload) if payload else {}
            work[(dest, aud)].append((e, Member(cid, key, body, body, "erasure")))
        # a vendor job that ended FAILED: its (hashed) members are sent again
        for (eid, dest), job_id in failed_jobs.items():
            if eid != e["erasure_id"]:
                continue
            row = con.execute(
                "select audience, members from ops.sync_jobs where job_id = ?", [job_id]
            ).fetchone()
            if row:
                for m in store.members_from_json(row[1]):
                    work[(dest, row[0])].append((e, m))
    results: dict[tuple[str, str], dict] = {}

    def note(erasure_id, dest, status, members=0, detail="", job_id=None):
        r = results.setdefault(
            (erasure_id, dest),
            {
                "erasure_id": erasure_id,
                "destination": dest,
                "status": status,
                "members": 0,
                "detail": [],
                "job_id": job_id,
            },
        )
        r["members"] += members
        if detail:
            r["detail"].append(detail)
        rank = ["not_a_member", "skipped", "delivered", "submitted", "waiting", "failed"]
        if rank.index(status) > rank.index(r["status"]):
            r["status"] = status
        r["job_id"] = job_id or r["job_id"]

    dests = {}
    for (dest_name, audience), items in sorted(work.items()):
        cls = registry.get(dest_name)
        spec = specs.get((audience, dest_name))
        # one call for all origins, unless the destination treats origins differently
        per_origin = cls.erase is not Destination.erase
        by_origin: dict[str, list[tuple[dict, Member]]] = defaultdict(list)
        for e, m in items:
            skip = not cls.erases(e["origin"])
            by_origin[e["origin"] if per_origin or skip else "*"].append((e, m))
        for group, pairs in by_origin.items():
            members = [m for _, m in pairs]
            origin = pairs[0][0]["origin"] if group == "*" else group
            if not cls.erases(origin):
                for e, _ in pairs:
                    note(e["erasure_id"], dest_name, "skipped", 1, f"{audience}: origin {origin}")
                continue
            if spec is None:
                for e, _ in pairs:
                    note(
                        e["erasure_id"],
                        dest_name,
                        "failed",
                        1,
                        f"{audience}: not in audiences.yml any more (its target is unknown)",
                    )
                continue
            dest = dests.setdefault(dest_name, registry.create(dest_name))
            try:
                result = dest.erase(members, spec, origin)
            except Exception as exc:  # a vendor outage: kept for the next night
                log.error("erasure to %s (%s) failed: %s", dest_name, audience, exc)
                for e, _ in pairs:
                    note(e["erasure_id"], dest_name, "failed", 1, f"{audience}: {exc}")
                continue
            by_key: dict[str, list[str]] = defaultdict(list)
            for e, m in pairs:
                by_key[m.key].append(e["erasure_id"])
            if result.job is not None:
                job_id = str(result.job["id"])
                ids = sorted({e["erasure_id"] for e, _ in pairs})
                store.record_job(
                    con,
                    job_id=job_id,
                    kind="erasure",
                    sync_run_id=None,
                    audience=audience,
                    destination=dest_name,
                    change="remove",
                    job={**result.job, "erasures": ids},
                    members=[Member("", m.key, m.payload, m.previous, "erasure") for m in members],
                    result=result,
                    at=now,
                )
                for e, m in pairs:
                    failed = result.rejected.get(m.key)
                    note(
                        e["erasure_id"],
                        dest_name,
                        "failed" if failed else "submitted",
                        1,
                        f"{audience}: job {job_id}" + (f" refused: {failed}" if failed else ""),
                        job_id,
                    )
                continue
            for e, m in pairs:
                reason = result.rejected.get(m.key)
                note(
                    e["erasure_id"],
                    dest_name,
                    "failed" if reason else "delivered",
                    1,
                    f"{audience}: {reason}" if reason else f"{audience}: removed",
                )
    # a job that is still running holds the person: removed once it ended (next night)
    for e in todo:
        for name in sorted(waiting[e["erasure_id"]]):
            note(e["erasure_id"], name, "waiting", 0, "inside a vendor job that has not ended")
    # destinations where the person has no membership
    for e in todo:
        for name in registry.names():
            if (e["erasure_id"], name) not in results and done.get((e["erasure_id"], name)) not in (
                *FINAL,
                "submitted",
            ):  # a submitted job reports for itself
                note(e["erasure_id"], name, "not_a_member")
    _record(con, results, found, now)
    out = [
        {**r, "detail": "; ".join(r["detail"])}
        for _, r in sorted(results.items(), key=lambda kv: kv[0])
    ]
    for r in out:
        log.info(
            "erasure %s -> %s: %s (%d members)",
            r["erasure_id"],
            r["destination"],
            r["status"],
            r["members"],
        )
    return out


def _record(con, results: dict, found: dict, now: datetime) -> None:
    """Deliveries, state dropped and ids scrubbed (where the removal went out), statuses."""
    con.execute("begin")
    try:
        for (erasure_id, dest), r in results.items():
            con.execute(
                "insert or replace into ops.erasure_deliveries (erasure_id, destination, "
                "status, members, detail, job_id, attempted_at) values (?, ?, ?, ?, ?, ?, ?)",
                [
                    erasure_id,
                    dest,
                    r["status"],
                    r["members"],
                    "; ".join(r["detail"]) or None,
                    r["job_id"],
                    now,
                ],
            )
        for erasure_id, (contact_ids, rows) in found.items():
            failed = {
                d for (e, d), r in results.items() if e == erasure_id and r["status"] == "failed"
            }
            for aud, dest, key, _cid, _payload in rows:
                if dest in failed:
                    continue  # kept: the next night resends from it
                con.execute(
                    "delete from ops.audience_membership where audience = ? "
                    "and destination = ? and member_key = ?",
                    [aud, dest, key],
                )
            keys = {(d, k) for _, d, k, _, _ in rows}
            ids = sorted(contact_ids)
            if ids:
                listed = ", ".join("?" * len(ids))
                con.execute(f"delete from ops.sync_rejections where contact_id in ({listed})", ids)
                con.execute(
                    f"update ops.sync_changes set contact_id = null, "
                    f"member_key = 'erased:' || ? where contact_id in ({listed})",
                    [erasure_id, *ids],
                )
            for dest, key in sorted(keys):
                con.execute(
                    "delete from ops.sync_rejections where destination = ? and member_key = ?",
                    [dest, key],
                )
                con.execute(
                    "update ops.sync_changes set contact_id = null, member_key = 'erased:' || ? "
                    "where destination = ? and member_key = ?",
                    [erasure_id, dest, key],
                )
        _set_status(con, sorted(found))
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise


def _set_status(con, erasure_ids: list[str]) -> None:
    for erasure_id in erasure_ids:
        statuses = [
            s
            for (s,) in con.execute(
                "select status from ops.erasure_deliveries where erasure_id = ?", [erasure_id]
            ).fetchall()
        ]
        final = statuses and all(s in FINAL for s in statuses)
        con.execute(
            "update ops.erasures set status = ? where erasure_id = ?",
            ["propagated" if final else "partial", erasure_id],
        )


def job_finished(con, row: dict, outcome) -> None:
    """An erasure job (Google Ads) ended: its deliveries become delivered or failed."""
    job = json.loads(row["job"])
    status = "failed" if outcome.rejected else "delivered"
    detail = "; ".join(sorted(set(outcome.rejected.values())))[:500] or None
    con.execute(
        "update ops.erasure_deliveries set status = ?, detail = coalesce(?, detail), "
        "attempted_at = ? where job_id = ?",
        [status, detail, store.now(), row["job_id"]],
    )
    _set_status(con, list(job.get("erasures") or []))


def email_sha256(email: str) -> str:
    """Contract B's email hash: sha256 hex of the trimmed, lowercased address."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def contact_id_sha256(contact_id: str) -> str:
    """Contract B's contact hash: sha256 hex of the HubSpot contact id as text."""
    return hashlib.sha256(str(contact_id).encode()).hexdigest()
