{#- Use the folder's schema name as is (staging, marts, ...), not "<target>_<name>":
    the warehouse has one environment per file/database. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ custom_schema_name | trim }}{%- endif -%}
{%- endmacro %}
