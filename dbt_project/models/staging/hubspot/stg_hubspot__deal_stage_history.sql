with

source as (

    select * from {{ source('hubspot', 'deal_stage_history') }}

),

renamed as (

    select
        deal_id || ':' || deal_stage || ':' || cast(changed_at as {{ dbt.type_string() }})
            as deal_stage_change_id,
        deal_id,
        deal_stage,
        source_type,
        {{ to_utc('changed_at') }} as changed_at

    from source

)

select * from renamed
