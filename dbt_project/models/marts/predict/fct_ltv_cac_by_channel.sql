{#- Predicted LTV by first-touch acquisition channel next to CAC. No ad-spend source is
    ingested yet, so spend and CAC are null (never zero) until one arrives. -#}
with

channels as (

    select
        first_touch_channel,
        sum(contacts_acquired) as contacts_acquired,
        sum(customers) as customers
    from {{ ref('fct_ltv_by_channel') }}
    group by 1

),

predictions as (

    select * from {{ ref('dim_customer_predictions') }}

),

per_channel as (

    select
        coalesce(first_touch_channel, 'unknown') as first_touch_channel,
        count(*) as customers_predicted,
        count(*) filter (where prediction_status = 'ok') as customers_with_prediction,
        avg(historic_ltv_usd) as historic_ltv_per_customer_usd,
        avg(predicted_clv_usd) as predicted_clv_per_customer_usd,
        avg(total_clv_usd) as total_ltv_per_customer_usd,
        sum(predicted_clv_usd) as predicted_clv_usd
    from predictions
    group by 1

),

final as (

    select
        channels.first_touch_channel,
        channels.contacts_acquired,
        channels.customers,
        per_channel.historic_ltv_per_customer_usd,
        per_channel.predicted_clv_per_customer_usd,
        per_channel.total_ltv_per_customer_usd,
        per_channel.predicted_clv_usd,
        case
            when coalesce(per_channel.customers_with_prediction, 0) > 0 then 'ok'
            else 'insufficient_data'
        end as prediction_status,
        cast(null as double precision) as ad_spend_usd,
        cast(null as double precision) as cac_usd,
        cast(null as double precision) as ltv_to_cac_ratio
    from channels
    left join per_channel on per_channel.first_touch_channel = channels.first_touch_channel

)

select * from final
