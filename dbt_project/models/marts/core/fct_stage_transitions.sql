{#- One row per move between stages (the first entry has no from_stage): forward moves,
    lapse, churn and return, with how long the contact spent in the stage it left. -#}
with

history as (

    select * from {{ ref('fct_lifecycle_stage_history') }}

),

with_previous as (

    select
        *,
        lag(valid_from) over (partition by contact_id order by valid_from) as previous_valid_from
    from history

),

final as (

    select
        stage_history_id as stage_transition_id,
        contact_id,
        previous_stage as from_stage,
        stage as to_stage,
        transition_type,
        valid_from as transitioned_at,
        case when previous_valid_from is not null then
            {{ days_between('previous_valid_from', 'valid_from') }}
        end as days_in_from_stage
    from with_previous

)

select * from final
