{#- Lapsed customers (no order for var('lapse_after_days') days, not yet churned), for
    win-back offers. -#}
with

contacts as (

    select * from {{ ref('dim_contacts') }}

),

final as (

    select
        {{ audience_columns() }},
        contacts.last_ordered_at,
        contacts.orders_count,
        contacts.revenue_usd
    from contacts
    where contacts.lifecycle_stage = 'lapsed'
      and {{ has_channel_consent('contacts.contact_id') }}

)

select * from final
