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

{#- A value the vendor sent as text (an optional timestamp or number), parsed; '' and
    anything that does not parse become null instead of failing the model. Staging keeps
    the raw text beside it (<column>_raw). kind: timestamp | number | integer. -#}
{% macro parse_text_as(column, kind) -%}
    {{ return(adapter.dispatch('parse_text_as', 'lifecycle')(column, kind)) }}
{%- endmacro %}

{% macro duckdb__parse_text_as(column, kind) -%}
    {%- set types = {'timestamp': 'timestamptz', 'number': 'double', 'integer': 'bigint'} -%}
    try_cast(nullif(trim(cast({{ column }} as varchar)), '') as {{ types[kind] }})
{%- endmacro %}

{% macro default__parse_text_as(column, kind) -%}
    {%- set types = {'timestamp': 'timestamptz', 'number': 'double precision', 'integer': 'bigint'} -%}
    {%- set patterns = {
        'timestamp': '^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]+)?)?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?$',
        'number': '^[+-]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([eE][+-]?[0-9]+)?$',
        'integer': '^[+-]?[0-9]+$'} -%}
    case when trim(cast({{ column }} as text)) ~ '{{ patterns[kind] }}'
        then cast(trim(cast({{ column }} as text)) as {{ types[kind] }}) end
{%- endmacro %}

{#- An optional vendor timestamp sent as text, as a naive UTC timestamp (null when ''). -#}
{% macro parse_timestamp(column) -%}
    {{ to_utc(parse_text_as(column, 'timestamp')) }}
{%- endmacro %}

{#- sha256 hex of a text expression (the hash ops.erasures stores). -#}
{% macro sha256_hex(expression) -%}
    {{ return(adapter.dispatch('sha256_hex', 'lifecycle')(expression)) }}
{%- endmacro %}

{% macro duckdb__sha256_hex(expression) -%}
    sha256({{ expression }})
{%- endmacro %}

{% macro default__sha256_hex(expression) -%}
    encode(sha256(convert_to({{ expression }}, 'UTF8')), 'hex')
{%- endmacro %}

{#- Whether a source table exists in the warehouse. Tables a connector creates only for
    some configurations (HubSpot consent properties, Mailchimp GDPR fields) are read
    through this, so a warehouse without them builds empty models instead of failing.
    True while parsing (dbt then records the dependency). -#}
{% macro source_exists(source_name, table_name) -%}
    {%- if not execute -%}{{ return(true) }}{%- endif -%}
    {%- set rel = source(source_name, table_name) -%}
    {%- set found = adapter.get_relation(
        database=rel.database, schema=rel.schema, identifier=rel.identifier) -%}
    {{ return(found is not none) }}
{%- endmacro %}

{#- The text value of key `key_expression` (a SQL expression) in a JSON object held as
    text; null when the key is absent. -#}
{% macro json_text(json_column, key_expression) -%}
    {{ return(adapter.dispatch('json_text', 'lifecycle')(json_column, key_expression)) }}
{%- endmacro %}

{% macro duckdb__json_text(json_column, key_expression) -%}
    json_extract_string({{ json_column }}, '$."' || {{ key_expression }} || '"')
{%- endmacro %}

{% macro default__json_text(json_column, key_expression) -%}
    (cast({{ json_column }} as json) ->> {{ key_expression }})
{%- endmacro %}

{#- Contacts an audience may hold: `contact_id` has consent on one of `channels`
    according to marts.dim_contact_consent (email: email_marketing granted; ads: every
    ad purpose granted). The one consent filter of every audience model. -#}
{% macro has_channel_consent(contact_id, channels=('email', 'ads')) -%}
    {{ contact_id }} in (
        select contact_id
        from {{ ref('dim_contact_consent') }}
        group by contact_id
        having
        {%- for channel in channels %}
            {%- if channel == 'email' %}
            max(case when channel = 'email' and is_granted then 1 else 0 end) = 1
            {%- else %}
            min(case when channel = 'ads' then (case when is_granted then 1 else 0 end) end) = 1
            {%- endif %}
            {%- if not loop.last %} or{% endif %}
        {%- endfor %}
    )
{%- endmacro %}

{#- True unless the row belongs to an erased person: `kind` is email (the expression is
    an address, trimmed and lowercased here), contact_id, user or anon (an id). Matched
    by sha256 against stg_ops__erased_identifiers (ops.erasures); a null never matches. -#}
{% macro not_erased(kind, expression) -%}
    {%- if kind == 'email' -%}
        {%- set text = "lower(trim(" ~ expression ~ "))" -%}
    {%- else -%}
        {%- set text = "trim(cast(" ~ expression ~ " as " ~ dbt.type_string() ~ "))" -%}
    {%- endif -%}
    (case when {{ expression }} is null then true
        else {{ sha256_hex(text) }} not in (
            select identifier_sha256 from {{ ref('stg_ops__erased_identifiers') }}
            where identifier_kind = '{{ kind }}')
    end)
{%- endmacro %}
