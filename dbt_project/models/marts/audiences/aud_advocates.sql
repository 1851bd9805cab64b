{#- Whom to ask for a referral or review: advocates, and loyal customers who are engaged
    right now (engagement segment engaged). -#}
with

contacts as (

    select * from {{ ref('dim_contacts') }}

),

final as (

    select
        {{ audience_columns() }},
        contacts.engagement_segment,
        contacts.orders_count
    from contacts
    where (contacts.lifecycle_stage = 'advocate'
        or (contacts.lifecycle_stage = 'loyal' and contacts.engagement_segment = 'engaged'))
      and {{ has_channel_consent('contacts.contact_id') }}

)

select * from final
