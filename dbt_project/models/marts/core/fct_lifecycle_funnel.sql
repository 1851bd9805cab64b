{#- The funnel per cohort month (the month a contact was created): for each forward
    stage, how many reached it, how many went on to the next forward stage, the
    conversion rate, the median days to get there (velocity) and the median days spent
    in the stage. -#}
with

contacts as (

    select contact_id, {{ month_of('created_at') }} as cohort_month
    from {{ ref('int_contacts') }}
    where created_at < {{ as_of() }}

),

stages as (

    select stage, stage_order,
        lead(stage) over (order by stage_order) as next_stage
    from {{ ref('lifecycle_stages') }}
    where stage_kind = 'forward'

),

entries as (

    select contact_id, stage, entered_at from {{ ref('int_lifecycle_stage_entries') }}
    where entered_at is not null

),

reached as (

    select
        contacts.cohort_month,
        stages.stage,
        stages.stage_order,
        stages.next_stage,
        entries.contact_id,
        entries.entered_at,
        next_entries.entered_at as next_entered_at
    from entries
    inner join contacts on contacts.contact_id = entries.contact_id
    inner join stages on stages.stage = entries.stage
    left join entries as next_entries
        on next_entries.contact_id = entries.contact_id
        and next_entries.stage = stages.next_stage

),

time_in_stage as (

    select
        contacts.cohort_month,
        history.stage,
        {{ median('history.days_in_stage') }} as median_days_in_stage
    from {{ ref('fct_lifecycle_stage_history') }} as history
    inner join contacts on contacts.contact_id = history.contact_id
    where not history.is_current
    group by 1, 2

),

final as (

    select
        cast(reached.cohort_month as {{ dbt.type_string() }}) || ':' || reached.stage
            as funnel_row_id,
        reached.cohort_month,
        reached.stage,
        reached.stage_order,
        reached.next_stage,
        count(*) as contacts_reached,
        count(reached.next_entered_at) as contacts_converted,
        cast(count(reached.next_entered_at) as double precision) / count(*)
            as conversion_rate,
        {{ median(days_between('reached.entered_at', 'reached.next_entered_at')) }}
            as median_days_to_next_stage,
        max(time_in_stage.median_days_in_stage) as median_days_in_stage
    from reached
    left join time_in_stage
        on time_in_stage.cohort_month = reached.cohort_month
        and time_in_stage.stage = reached.stage
    group by 1, 2, 3, 4, 5

)

select * from final
