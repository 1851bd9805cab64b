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

{#- Median of a column (an ordered-set aggregate both DuckDB and PostgreSQL know). -#}
{% macro median(column) -%}
    percentile_cont(0.5) within group (order by {{ column }})
{%- endmacro %}

{#- The columns every audience model starts with (the contract with activation). -#}
{% macro audience_columns(alias='contacts') -%}
    {{ alias }}.contact_id,
    {{ alias }}.email,
    {{ alias }}.phone,
    {{ alias }}.first_name,
    {{ alias }}.last_name,
    {{ alias }}.country_code,
    {{ alias }}.lifecycle_stage,
    {{ alias }}.lead_score,
    {{ alias }}.has_email_consent,
    {{ alias }}.has_ad_consent,
    {{ alias }}.email_status
{%- endmacro %}

{#- A date as the first day of its month (cohorts). -#}
{% macro month_of(column) -%}
    cast({{ dbt.date_trunc('month', column) }} as date)
{%- endmacro %}

{#- A text field with the loader's missing-value spellings ('NaN', '') as null: JSON
    writers that serialise a float NaN for "no value" leave the string 'NaN' behind. -#}
{% macro clean_text(column) -%}
    nullif(nullif(trim({{ column }}), 'NaN'), '')
{%- endmacro %}

{#- The value of query parameter `name` in a URL column, or null (DuckDB and PostgreSQL). -#}
{% macro url_parameter(column, name) -%}
    {{ return(adapter.dispatch('url_parameter')(column, name)) }}
{%- endmacro %}

{% macro default__url_parameter(column, name) -%}
    nullif(regexp_extract({{ column }}, '[?&]{{ name }}=([^&#]*)', 1), '')
{%- endmacro %}

{% macro postgres__url_parameter(column, name) -%}
    nullif(substring({{ column }} from '[?&]{{ name }}=([^&#]*)'), '')
{%- endmacro %}
