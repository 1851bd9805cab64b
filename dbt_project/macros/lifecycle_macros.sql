{#- The instant the night is built for: var('as_of') from the DAG, else now. -#}
{% macro as_of() -%}
    {%- if var('as_of', none) -%}
        cast('{{ var("as_of") }}' as timestamp)
    {%- else -%}
        cast(current_date as timestamp)
    {%- endif -%}
{%- endmacro %}

{#- A timestamp with time zone as a naive UTC timestamp (same in DuckDB and PostgreSQL). -#}
{% macro to_utc(column) -%}
    cast(({{ column }} at time zone 'UTC') as timestamp)
{%- endmacro %}

{#- Days between two timestamps as a fraction (seconds / 86400). -#}
{% macro days_between(start, end) -%}
    ({{ dbt.datediff(start, end, 'second') }} / 86400.0)
{%- endmacro %}

{#- Lowercased, trimmed email or null when blank. -#}
{% macro normalize_email(column) -%}
    nullif(lower(trim({{ column }})), '')
{%- endmacro %}
