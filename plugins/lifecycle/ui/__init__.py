"""The Lifecycle page inside the Airflow UI: an Airflow 3 plugin (``fastapi_apps`` plus an
``external_views`` nav entry) that reads the serving snapshot read-only.

``plugin`` is what Airflow loads (light: no FastAPI, DuckDB or auth imports until the first
request); ``app`` builds the FastAPI app behind Airflow's auth manager; ``snapshot`` holds
the SQL on the serving snapshot and ``runs`` what Airflow's metadata says about the nights.
"""
