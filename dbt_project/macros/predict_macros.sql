{#- The rows of a table the nightly `predict` task writes (schema predict), or, before
    that task has ever run on this warehouse, an empty table of the columns declared in
    _predict__sources.yml (so a plain `dbt build` works on a fresh warehouse). -#}
{% macro predict_source(name) -%}
    {%- set src = source('predict', name) -%}
    {%- if not execute -%}
        select 1 as placeholder
    {%- else -%}
        {%- set rel = adapter.get_relation(
            database=src.database, schema=src.schema, identifier=src.identifier) -%}
        {%- if rel is not none -%}
            select * from {{ src }}
        {%- else -%}
            {%- set node = graph.sources['source.lifecycle.predict.' ~ name] -%}
            select
            {%- for col in node.columns.values() %}
                cast(null as {{ col.data_type }}) as {{ col.name }}{{ "," if not loop.last }}
            {%- endfor %}
            where 1 = 0
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{#- One numeric setting of seeds/predict_settings.csv, as a scalar subquery. -#}
{% macro predict_setting(name) -%}
    (select max(value) from {{ ref('predict_settings') }} where setting = '{{ name }}')
{%- endmacro %}
