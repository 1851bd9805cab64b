{#- One row per contact per stage period: valid from when it entered the stage until it
    entered the next one (null while current). Lapse, churn and return are periods too,
    so a customer who lapsed and came back has two customer-side periods. -#}
with

contacts as (

    select contact_id from {{ ref('int_contacts') }}
    where created_at < {{ as_of() }}

),

timeline as (

    select * from {{ ref('int_lifecycle_stage_timeline') }}

),

final as (

    select
        timeline.stage_period_id as stage_history_id,
        timeline.contact_id,
        timeline.stage,
        timeline.stage_order,
        timeline.previous_stage,
        timeline.transition_type,
        timeline.valid_from,
        timeline.valid_to,
        timeline.valid_to is null as is_current,
        {{ days_between('timeline.valid_from', 'coalesce(timeline.valid_to, ' ~ as_of() ~ ')') }}
            as days_in_stage
    from timeline
    inner join contacts on contacts.contact_id = timeline.contact_id

)

select * from final
