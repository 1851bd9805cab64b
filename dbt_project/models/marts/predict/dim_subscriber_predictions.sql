{#- One row per subscriber: cohort, renewals, and for the active ones the discounted
    expected residual lifetime (DERL, in periods) and its value. -#}
with

predictions as (

    {{ predict_source('subscriber_predictions') }}

),

contacts as (

    select contact_id from {{ ref('dim_contacts') }}

),

final as (

    select
        predictions.contact_id,
        predictions.cohort,
        predictions.started_at,
        predictions.renewals,
        predictions.is_active,
        predictions.price_usd,
        predictions.derl_periods,
        predictions.expected_residual_value_usd,
        predictions.fit_cohort,
        predictions.prediction_status,
        predictions.night as predicted_for_night
    from predictions
    inner join contacts on contacts.contact_id = predictions.contact_id
    where predictions.night = cast({{ as_of() }} as date)

)

select * from final
