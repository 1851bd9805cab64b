"""What every source shares: the dlt pipeline into the warehouse, contracts, quarantine.

A source module defines dlt resources that yield good records to their table and bad
ones to ``quarantine`` (via :func:`quarantined`), so one load package carries both and
nothing is dropped silently. :func:`run_source` runs a source into ``raw_<name>`` and
returns row counts per table for the task log and XCom. Segment's files are loaded by
DuckDB alone (``sources/segment.py``); it shares the quarantine rows
(:func:`quarantine_row`) and the log line (:func:`log_loaded`).

Every field staging reads is declared (:class:`Field`, :func:`declared_columns`), so a
field that is absent, null or ``""`` on every record of a load still lands as a typed
null column instead of no column (dlt creates a column only for values it has seen) or
a text column. Optional timestamps and numbers land as the text the vendor sent
(``""`` included); staging parses them (``parse_text_as``) and keeps the raw text beside the
parsed value, so an empty string becomes a null, never a failed model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import dlt
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

from lifecycle.config import duckdb_settings, settings

log = logging.getLogger(__name__)
#: How dlt hands rows to DuckDB. Its default for DuckDB is ``insert_values`` (SQL INSERT
#: statements), which spent 37 of a 52 s Mailchimp load of 10,000 contacts (190,000
#: rows) in the load step; Parquet files load in about 1 s. ``LIFECYCLE_DLT_FILE_FORMAT``
#: overrides it (``insert_values``, ``jsonl``).
LOADER_FILE_FORMAT = os.environ.get("LIFECYCLE_DLT_FILE_FORMAT", "parquet")

# Credentials come from Airflow Connections through lifecycle.connections, never from
# dlt's config. dlt otherwise probes Airflow Variables for every config value it resolves
# (hundreds of metadata-DB queries, several seconds per run): switch that provider off.
os.environ.setdefault("PROVIDERS__ENABLE_AIRFLOW_SECRETS", "false")
# dlt keeps a copy of every loaded record under its pipelines folder unless told not to:
# an erased person's email would outlive `lifecycle forget` there.
os.environ.setdefault("LOAD__DELETE_COMPLETED_JOBS", "true")
# ... nor, in its merge staging datasets (raw_<source>_staging), the last load's rows.
os.environ.setdefault("LOAD__TRUNCATE_STAGING_DATASET", "true")
# Rows a source yields as Arrow tables (Mailchimp's email activity) get the same
# _dlt_load_id and _dlt_id columns as rows yielded as dicts: one table, either way.
os.environ.setdefault("NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_ID", "true")
os.environ.setdefault("NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_LOAD_ID", "true")

QUARANTINE_TABLE = "quarantine"


@dataclass(frozen=True)
class Field:
    """A field of a record: its name, the type its value must parse as, and whether every
    record must carry it (a missing required field sends the record to quarantine)."""

    name: str
    kind: str = "str"  # str | number | timestamp | bool | json
    required: bool = True


#: dlt data type per field kind when the field is required (the contract guarantees a
#: parseable value). Optional timestamps and numbers land as text: see the module doc.
_REQUIRED_TYPES = {"str": "text", "number": "double", "timestamp": "timestamp", "bool": "bool"}
_OPTIONAL_TYPES = {"str": "text", "number": "text", "timestamp": "text", "bool": "bool"}


def declared_columns(fields: Iterable[Field]) -> dict[str, dict]:
    """dlt column hints for ``fields``: every declared column exists with its type even
    when no record of the load carries a value for it."""
    hints: dict[str, dict] = {}
    for f in fields:
        if f.kind == "json":
            hints[f.name] = {"data_type": "json"}
            continue
        types = _REQUIRED_TYPES if f.required else _OPTIONAL_TYPES
        hints[f.name] = {"data_type": types[f.kind]}
    return hints


def _check(value, kind: str) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if kind == "number":
        if isinstance(value, bool):
            return False
        if isinstance(value, int | float):
            return True
        try:
            float(value)
            return True
        except (TypeError, ValueError):
            return False
    if kind == "timestamp":
        if not isinstance(value, str):
            return False
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
            return True
        except ValueError:
            return False
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "json":
        return True
    raise ValueError(f"unknown field kind {kind!r}")


def violation(record: dict, contract: Iterable[Field]) -> str | None:
    """Why ``record`` breaks its contract, or None when it is fine."""
    for f in contract:
        value = record.get(f.name)
        if value is None or value == "":
            if f.required:
                return f"missing required field '{f.name}'"
            continue
        if not _check(value, f.kind):
            return (
                f"field '{f.name}' expected {f.kind}, got {type(value).__name__} "
                f"{str(value)[:40]!r}"
            )
    return None


def quarantine_row(source: str, entity: str, record: dict, reason: str, key: str | None = None):
    """The row of ``raw_<source>.quarantine`` for ``record``: the same id for the same
    record and reason (a re-run replaces it, never duplicates it)."""
    payload = json.dumps(record, sort_keys=True, default=str)
    qid = hashlib.sha256(f"{entity}|{reason}|{payload}".encode()).hexdigest()[:32]
    return {
        "quarantine_id": qid,
        "source": source,
        "entity": entity,
        "record_key": key,
        "reason": reason,
        "payload": payload,
        "quarantined_at": datetime.now(UTC).isoformat(),
    }


def quarantined(source: str, entity: str, record: dict, reason: str, key: str | None = None):
    """A quarantine row for ``record``, routed by dlt to the ``quarantine`` table."""
    return dlt.mark.with_hints(
        quarantine_row(source, entity, record, reason, key),
        dlt.mark.make_hints(
            table_name=QUARANTINE_TABLE,
            write_disposition="merge",
            primary_key="quarantine_id",
            # {} (not None): start from no columns, not from the source table's hints
            columns={},
        ),
        create_table_variant=True,
    )


def pipeline(source_name: str) -> dlt.Pipeline:
    """The dlt pipeline that loads ``source_name`` into ``raw_<source_name>``."""
    s = settings()
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    s.warehouse_path.parent.mkdir(parents=True, exist_ok=True)
    return dlt.pipeline(
        pipeline_name=f"lifecycle_{source_name}",
        pipelines_dir=str(s.dlt_dir / "pipelines"),
        # the profile's DuckDB settings (memory_limit, threads, TimeZone): without them
        # dlt's connection takes DuckDB's defaults (80% of RAM), and a Mailchimp load
        # of 10,000 contacts peaked at 2.9 GB
        destination=dlt.destinations.duckdb(
            credentials=DuckDbCredentials(str(s.warehouse_path), global_config=duckdb_settings(s))
        ),
        dataset_name=f"raw_{source_name}",
    )


def run_source(source_name: str, source, *, full_refresh: bool = False) -> dict[str, int]:
    """Run a dlt source into the warehouse; return rows loaded per table in this run."""
    p = pipeline(source_name)
    info = p.run(
        source,
        refresh="drop_sources" if full_refresh else None,
        loader_file_format=LOADER_FILE_FORMAT,
    )
    info.raise_on_failed_jobs()
    counts = {
        table: int(n)
        for table, n in (p.last_trace.last_normalize_info.row_counts or {}).items()
        if not table.startswith("_dlt")
    }
    log_loaded(source_name, counts)
    return counts


def log_loaded(source_name: str, counts: dict[str, int]) -> None:
    """The task log's line for a load: rows per table, and quarantined records loudly."""
    q = counts.get(QUARANTINE_TABLE, 0)
    log.info(
        "raw_%s: loaded %s%s",
        source_name,
        counts,
        f"; {q} records QUARANTINED (see raw_{source_name}.quarantine)" if q else "",
    )
