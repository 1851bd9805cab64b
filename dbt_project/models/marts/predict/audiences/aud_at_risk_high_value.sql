{#- Win-back: customers in the top of historic revenue (at_risk_value_quantile of seed
    predict_settings) whose churn risk is in the high band (seed churn_risk_bands). -#}
with

contacts as (

    select * from {{ ref('dim_contacts') }}

),

predictions as (

    select
        *,
        percent_rank() over (order by historic_ltv_usd) as value_rank
    from {{ ref('dim_customer_predictions') }}
    where prediction_status = 'ok'

),

final as (

    select
        {{ audience_columns() }},
        predictions.churn_risk,
        predictions.churn_risk_band,
        predictions.p_alive,
        predictions.historic_ltv_usd,
        predictions.predicted_clv_usd
    from contacts
    inner join predictions on predictions.contact_id = contacts.contact_id
    where predictions.churn_risk_band = 'high'
      and predictions.value_rank >= {{ predict_setting('at_risk_value_quantile') }}
      and {{ has_channel_consent('contacts.contact_id') }}

)

select * from final
