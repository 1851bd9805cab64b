{#- One row per contact per stage entered, valid until the next stage was entered. -#}
with

entries as (

    select contact_id, stage, stage_order, entered_at
    from {{ ref('int_lifecycle_stage_entries') }}

),

fallen as (

    {#- lapsed before churned: a churned customer passed through lapsed first -#}
    select
        contact_id,
        'lapsed' as stage,
        10 as stage_order,
        {{ dbt.dateadd('day', var('lapse_after_days'), 'last_ordered_at') }} as entered_at
    from {{ ref('dim_contacts') }}
    where lifecycle_stage in ('lapsed', 'churned')

    union all

    select contact_id, 'churned', 11, stage_entered_at
    from {{ ref('dim_contacts') }}
    where lifecycle_stage = 'churned'

),

unioned as (

    select * from entries
    union all
    select * from fallen

),

final as (

    select
        contact_id || ':' || stage as stage_history_id,
        contact_id,
        stage,
        entered_at as valid_from,
        lead(entered_at) over (
            partition by contact_id order by entered_at, stage_order
        ) as valid_to
    from unioned

)

select
    *,
    valid_to is null as is_current
from final
