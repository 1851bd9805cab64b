{#- The stage machine: every period a contact spent in one stage, in time order.

    A contact's stage at any instant is the highest forward stage it has entered (stages
    never go backwards), unless it is a customer who has not ordered for
    var('lapse_after_days') (lapsed) or var('churn_after_days') (churned). The next
    order is a return: the contact goes back to the forward stage its orders earn.
    These are the only moves that are not forward. -#}
with

entries as (

    select contact_id, stage, stage_order, entered_at
    from {{ ref('int_lifecycle_stage_entries') }}
    where entered_at is not null

),

stages as (

    select stage, stage_order from {{ ref('lifecycle_stages') }}

),

orders as (

    select
        contact_id,
        ordered_at,
        lead(ordered_at) over (partition by contact_id order by ordered_at, order_id)
            as next_ordered_at
    from {{ ref('int_orders_numbered') }}

),

gaps as (

    select
        contact_id,
        {{ dbt.dateadd('day', var('lapse_after_days'), 'ordered_at') }} as lapse_at,
        {{ dbt.dateadd('day', var('churn_after_days'), 'ordered_at') }} as churn_at,
        next_ordered_at
    from orders

),

{#- Lapsed from lapse_at until the next order or churn; churned until the next order. -#}
fallen as (

    select
        contact_id,
        'lapsed' as stage,
        lapse_at as starts_at,
        case
            when churn_at < coalesce(next_ordered_at, {{ as_of() }}) then churn_at
            else next_ordered_at
        end as ends_at
    from gaps
    where lapse_at < coalesce(next_ordered_at, {{ as_of() }})

    union all

    select contact_id, 'churned', churn_at, next_ordered_at
    from gaps
    where churn_at < coalesce(next_ordered_at, {{ as_of() }})

),

change_points as (

    select contact_id, entered_at as changed_at from entries
    union
    select contact_id, starts_at from fallen
    union
    select contact_id, ends_at from fallen where ends_at is not null

),

forward_at as (

    select
        change_points.contact_id,
        change_points.changed_at,
        entries.stage,
        row_number() over (
            partition by change_points.contact_id, change_points.changed_at
            order by entries.stage_order desc
        ) as rank_n
    from change_points
    inner join entries
        on entries.contact_id = change_points.contact_id
        and entries.entered_at <= change_points.changed_at

),

stage_at as (

    select
        forward_at.contact_id,
        forward_at.changed_at,
        coalesce(fallen.stage, forward_at.stage) as stage,
        forward_at.stage as forward_stage
    from forward_at
    left join fallen
        on fallen.contact_id = forward_at.contact_id
        and fallen.starts_at <= forward_at.changed_at
        and (fallen.ends_at is null or fallen.ends_at > forward_at.changed_at)
    where forward_at.rank_n = 1

),

with_previous as (

    select
        *,
        lag(stage) over (partition by contact_id order by changed_at) as previous_stage
    from stage_at

),

periods as (

    select *
    from with_previous
    where previous_stage is null or previous_stage <> stage

),

final as (

    select
        periods.contact_id || ':' || cast(
            row_number() over (partition by periods.contact_id order by periods.changed_at)
            as {{ dbt.type_string() }}
        ) as stage_period_id,
        periods.contact_id,
        periods.stage,
        stages.stage_order,
        periods.previous_stage,
        periods.forward_stage,
        case
            when periods.previous_stage is null then 'entry'
            when periods.stage = 'lapsed' then 'lapse'
            when periods.stage = 'churned' then 'churn'
            when periods.previous_stage in ('lapsed', 'churned') then 'return'
            else 'forward'
        end as transition_type,
        periods.changed_at as valid_from,
        lead(periods.changed_at) over (
            partition by periods.contact_id order by periods.changed_at
        ) as valid_to
    from periods
    inner join stages on stages.stage = periods.stage

)

select * from final
