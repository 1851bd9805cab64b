{#- One row per customer: probability alive, expected purchases (30/90/365 days), the
    expected next-order date, predicted CLV and the churn-risk band (seed
    churn_risk_bands). Below the minimum-data rules (seed predict_minimum_data) every
    number is null and prediction_status / churn_risk_band say insufficient_data. -#}
with

predictions as (

    {{ predict_source('customer_predictions') }}

),

customers as (

    select * from {{ ref('dim_customers') }}

),

bands as (

    select * from {{ ref('churn_risk_bands') }}

),

tonight as (

    select * from predictions
    where night = cast({{ as_of() }} as date)

),

final as (

    select
        tonight.contact_id,
        tonight.night as predicted_for_night,
        tonight.prediction_status,
        tonight.status_reason,
        tonight.frequency as repeat_purchase_days,
        tonight.recency_days,
        tonight.tenure_days,
        tonight.p_alive,
        tonight.expected_purchases_30d,
        tonight.expected_purchases_90d,
        tonight.expected_purchases_365d,
        tonight.p_order_within_window,
        tonight.expected_next_order_at,
        tonight.expected_spend_usd,
        tonight.predicted_clv_usd,
        customers.historic_ltv_usd,
        customers.historic_ltv_usd + tonight.predicted_clv_usd as total_clv_usd,
        tonight.churn_risk,
        case
            when tonight.prediction_status <> 'ok' then 'insufficient_data'
            else bands.churn_risk_band
        end as churn_risk_band,
        tonight.clv_horizon_days,
        tonight.annual_discount_rate,
        customers.first_touch_channel,
        customers.rfm_segment
    from tonight
    inner join customers on customers.contact_id = tonight.contact_id
    left join bands
        on tonight.churn_risk >= bands.min_risk
        and tonight.churn_risk < bands.max_risk

)

select * from final
