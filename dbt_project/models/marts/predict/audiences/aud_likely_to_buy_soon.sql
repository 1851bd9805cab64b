{#- Replenishment: customers whose probability of an order within
    likely_to_buy_window_days is at least likely_to_buy_min_probability (seed
    predict_settings). -#}
with

contacts as (

    select * from {{ ref('dim_contacts') }}

),

predictions as (

    select * from {{ ref('dim_customer_predictions') }}
    where prediction_status = 'ok'

),

final as (

    select
        {{ audience_columns() }},
        predictions.p_order_within_window,
        predictions.expected_next_order_at,
        predictions.expected_purchases_30d
    from contacts
    inner join predictions on predictions.contact_id = contacts.contact_id
    where predictions.p_order_within_window >= {{ predict_setting('likely_to_buy_min_probability') }}
      and {{ has_channel_consent('contacts.contact_id') }}

)

select * from final
