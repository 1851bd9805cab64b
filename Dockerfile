# Image for the team deployment (docker-compose.yml): Airflow 3 with the project installed.
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:root pyproject.toml README.md /opt/lifecycle/
COPY --chown=airflow:root plugins /opt/lifecycle/plugins
RUN pip install --no-cache-dir -e /opt/lifecycle
COPY --chown=airflow:root dags /opt/airflow/dags
COPY --chown=airflow:root dbt_project /opt/lifecycle/dbt_project
COPY --chown=airflow:root include /opt/lifecycle/include
ENV LIFECYCLE_HOME=/opt/lifecycle \
    LIFECYCLE_DATA_DIR=/opt/lifecycle/data \
    DBT_PROFILES_DIR=/opt/lifecycle/dbt_project
RUN dbt parse --project-dir /opt/lifecycle/dbt_project --profiles-dir /opt/lifecycle/dbt_project
