{#- New subscribers: contacts still at the subscriber stage who joined within the last
    var('welcome_window_days') days, for the welcome sequence. -#}
with

contacts as (

    select * from {{ ref('dim_contacts') }}

),

final as (

    select
        {{ audience_columns() }},
        contacts.created_at as subscribed_at
    from contacts
    where contacts.lifecycle_stage = 'subscriber'
      and contacts.created_at >= {{ dbt.dateadd('day', -1 * var('welcome_window_days'), as_of()) }}
      and {{ has_channel_consent('contacts.contact_id') }}

)

select * from final
