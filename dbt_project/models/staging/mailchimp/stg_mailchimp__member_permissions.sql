{#- One row per list member and marketing permission (GDPR field). Permission ids are
    opaque and differ per list: match a permission by its text. -#}
with

source as (

    {% if source_exists('mailchimp', 'member_permissions') -%}
    select * from {{ source('mailchimp', 'member_permissions') }}
    {%- else -%}
    -- no list of the account has GDPR fields: the connector made no table
    select
        cast(null as {{ dbt.type_string() }}) as list_id,
        cast(null as {{ dbt.type_string() }}) as member_id,
        cast(null as {{ dbt.type_string() }}) as marketing_permission_id,
        cast(null as {{ dbt.type_string() }}) as text,
        cast(null as {{ dbt.type_boolean() }}) as enabled,
        cast(null as {{ dbt.type_timestamp() }}) as member_last_changed
    where 1 = 0
    {%- endif %}

),

renamed as (

    select
        list_id || ':' || member_id || ':' || marketing_permission_id as member_permission_id,
        list_id || ':' || member_id as list_member_id,
        list_id,
        member_id,
        marketing_permission_id,
        text as permission_text,
        lower(trim(text)) as permission_text_normalized,
        coalesce(enabled, false) as is_enabled,
        {{ to_utc('member_last_changed') }} as member_last_changed_at

    from source

)

select * from renamed
