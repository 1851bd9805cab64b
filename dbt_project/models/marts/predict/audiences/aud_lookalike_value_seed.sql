{#- Value-weighted lookalike seed: the top lookalike_value_top_fraction of customers by
    total value (historic + predicted CLV), each with its value for value-based
    lookalikes. -#}
with

contacts as (

    select * from {{ ref('dim_contacts') }}

),

ranked as (

    select
        contact_id,
        total_clv_usd,
        row_number() over (order by total_clv_usd desc, contact_id) as value_rank,
        count(*) over () as customers
    from {{ ref('dim_customer_predictions') }}
    where prediction_status = 'ok'

),

final as (

    select
        {{ audience_columns() }},
        ranked.total_clv_usd as lookalike_value_usd,
        ranked.value_rank
    from contacts
    inner join ranked on ranked.contact_id = contacts.contact_id
    where ranked.value_rank <= ranked.customers * {{ predict_setting('lookalike_value_top_fraction') }}
      and {{ has_channel_consent('contacts.contact_id') }}

)

select * from final
