{#- The best customers: loyal stage or the RFM segment champions, for exclusive offers. -#}
with

contacts as (

    select * from {{ ref('dim_contacts') }}

),

final as (

    select
        {{ audience_columns() }},
        contacts.rfm_segment,
        contacts.orders_count,
        contacts.revenue_usd
    from contacts
    where (contacts.lifecycle_stage = 'loyal' or contacts.rfm_segment = 'champions')
      and contacts.lifecycle_stage not in ('lapsed', 'churned')
      and {{ has_channel_consent('contacts.contact_id') }}

)

select * from final
