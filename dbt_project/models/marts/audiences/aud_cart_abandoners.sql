{#- Contacts who started a checkout in the last var('cart_abandon_window_days') days and
    have not completed an order since, for an abandoned-cart reminder. -#}
with

contacts as (

    select * from {{ ref('dim_contacts') }}

),

events as (

    select contact_id, event_name, event_at
    from {{ ref('int_events_attributed') }}
    where contact_id is not null
      and event_name in ('Checkout Started', 'Order Completed')

),

checkouts as (

    select contact_id, max(event_at) as checkout_started_at
    from events
    where event_name = 'Checkout Started'
      and event_at >= {{ dbt.dateadd('day', -1 * var('cart_abandon_window_days'), as_of()) }}
    group by 1

),

abandoned as (

    select checkouts.contact_id, checkouts.checkout_started_at
    from checkouts
    left join events as orders
        on orders.contact_id = checkouts.contact_id
        and orders.event_name = 'Order Completed'
        and orders.event_at >= checkouts.checkout_started_at
    where orders.contact_id is null

),

final as (

    select
        {{ audience_columns() }},
        abandoned.checkout_started_at
    from contacts
    inner join abandoned on abandoned.contact_id = contacts.contact_id
    where {{ has_channel_consent('contacts.contact_id') }}

)

select * from final
