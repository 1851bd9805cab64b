{#- Completed orders per contact, numbered in time order (order_id dedupes resends). -#}
with

orders as (

    select
        order_id,
        contact_id,
        revenue_usd,
        event_at as ordered_at,
        row_number() over (partition by order_id order by event_at, event_id) as copy_n
    from {{ ref('int_events_attributed') }}
    where event_name = 'Order Completed'
      and order_id is not null
      and contact_id is not null

),

final as (

    select
        order_id,
        contact_id,
        revenue_usd,
        ordered_at,
        row_number() over (partition by contact_id order by ordered_at, order_id) as order_number
    from orders
    where copy_n = 1

)

select * from final
