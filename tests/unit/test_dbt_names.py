"""Every relation dbt creates fits PostgreSQL's identifier limit.

PostgreSQL truncates or refuses names longer than 63 bytes (NAMEDATALEN - 1,
https://www.postgresql.org/docs/current/sql-syntax-lexical.html#SQL-SYNTAX-IDENTIFIERS).
dbt-postgres builds a relation named after each model and seed, and a temporary
one named after each unit test, so a long unit-test name fails the whole
PostgreSQL build (it did, in CI) while DuckDB accepts it. This reads the project
files directly, so it catches the name before the slow PostgreSQL test does.
"""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "dbt_project"
LIMIT = 63


def relation_names() -> list[tuple[str, str]]:
    names = []
    for folder, pattern in (("models", "*.sql"), ("seeds", "*.csv"), ("snapshots", "*.sql")):
        for path in (PROJECT / folder).rglob(pattern):
            names.append((path.stem, str(path.relative_to(PROJECT))))
    for path in (PROJECT / "models").rglob("*.yml"):
        doc = yaml.safe_load(path.read_text()) or {}
        for test in doc.get("unit_tests") or []:
            names.append((test["name"], str(path.relative_to(PROJECT))))
    return names


def test_the_project_has_models_seeds_and_unit_tests():
    found = relation_names()
    assert sum(1 for _, where in found if where.startswith("seeds/")) >= 5
    assert sum(1 for _, where in found if where.endswith(".yml")) >= 5


def test_no_relation_name_exceeds_postgres_identifier_limit():
    too_long = [
        f"{where}: {name} ({len(name.encode())} bytes)"
        for name, where in relation_names()
        if len(name.encode()) > LIMIT
    ]
    assert not too_long, "longer than PostgreSQL's 63-byte identifier limit:\n" + "\n".join(
        too_long
    )
