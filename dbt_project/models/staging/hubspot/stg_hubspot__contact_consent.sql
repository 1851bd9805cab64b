{#- One row per contact and consent property the consent seed names (the connector
    requests exactly those), with the time the current value was set (HubSpot's
    property history); without a history entry, the contact's last modification. -#}
with

source as (

    {% if source_exists('hubspot', 'contact_consent') -%}
    select * from {{ source('hubspot', 'contact_consent') }}
    {%- else -%}
    -- the consent seed names no HubSpot property: the connector made no table
    select
        cast(null as {{ dbt.type_string() }}) as contact_id,
        cast(null as {{ dbt.type_string() }}) as property,
        cast(null as {{ dbt.type_string() }}) as value,
        cast(null as {{ dbt.type_string() }}) as changed_at,
        cast(null as {{ dbt.type_string() }}) as source_type,
        cast(null as {{ dbt.type_timestamp() }}) as contact_updated_at
    where 1 = 0
    {%- endif %}

),

renamed as (

    select
        contact_id || ':' || property as contact_consent_id,
        contact_id,
        property,
        nullif(lower(trim(value)), '') as property_value,
        value as property_value_raw,
        coalesce(
            {{ parse_timestamp('changed_at') }}, {{ to_utc('contact_updated_at') }}
        ) as changed_at,
        {{ parse_timestamp('changed_at') }} is not null as has_change_time,
        source_type

    from source
    where {{ not_erased('contact_id', 'contact_id') }}

)

select * from renamed
