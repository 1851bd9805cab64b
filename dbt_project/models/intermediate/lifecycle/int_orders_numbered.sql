{#- Every order of a contact, from either system, numbered in time order: web orders
    (Order Completed, deduplicated on order_id) and closed-won deals. A won deal and a
    web order of the same contact with the same amount (within 1%) closed within
    var('order_deal_match_days') of each other are one order: it keeps the web order's
    id and time. Unmatched won deals are orders of their own (order_id deal:<id>,
    ordered_at = closedate). The one home of orders: every model that counts orders
    reads this one. -#}
with

web as (

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

web_orders as (

    select order_id, contact_id, revenue_usd, ordered_at from web where copy_n = 1

),

merges as (

    select * from {{ ref('int_contact_merges') }}

),

won_deals as (

    select
        deals.deal_id,
        merges.contact_id,
        deals.amount_usd,
        deals.closed_at
    from {{ ref('stg_hubspot__deals') }} as deals
    inner join merges on merges.merged_contact_id = deals.contact_id
    where deals.is_won
      and deals.closed_at is not null
      and deals.closed_at < {{ as_of() }}

),

candidates as (

    select
        won_deals.deal_id,
        web_orders.order_id,
        abs({{ dbt.datediff('web_orders.ordered_at', 'won_deals.closed_at', 'second') }})
            as seconds_apart
    from won_deals
    inner join web_orders
        on web_orders.contact_id = won_deals.contact_id
        and abs(web_orders.revenue_usd - won_deals.amount_usd)
            <= 0.01 * abs(web_orders.revenue_usd) + 0.01
        and abs({{ dbt.datediff('web_orders.ordered_at', 'won_deals.closed_at', 'second') }})
            <= {{ var('order_deal_match_days') }} * 86400

),

{#- one-to-one: a pair is a match when each is the other's closest candidate; then the
    same among the deals and orders still unpaired, for var('order_deal_match_rounds')
    rounds. (Two orders of one amount a day apart whose deals close hours late: the
    first deal is nearer the second order, which pairs with its own deal; the first deal
    and the first order pair in the next round instead of counting twice.) -#}
{%- set rounds = var('order_deal_match_rounds') | int %}
{%- for i in range(1, rounds + 1) %}

ranked_{{ i }} as (

    select
        *,
        row_number() over (partition by deal_id order by seconds_apart, order_id) as deal_rank,
        row_number() over (partition by order_id order by seconds_apart, deal_id) as order_rank
    from candidates
    {%- if i > 1 %}
    where deal_id not in (select deal_id from matched_{{ i - 1 }})
      and order_id not in (select order_id from matched_{{ i - 1 }})
    {%- endif %}

),

matched_{{ i }} as (

    {%- if i > 1 %}
    select deal_id, order_id from matched_{{ i - 1 }}
    union all
    {%- endif %}
    select deal_id, order_id from ranked_{{ i }} where deal_rank = 1 and order_rank = 1

),
{%- endfor %}

matched as (

    select * from matched_{{ rounds }}

),

unioned as (

    select
        web_orders.order_id,
        web_orders.contact_id,
        web_orders.revenue_usd,
        web_orders.ordered_at,
        matched.deal_id,
        case when matched.deal_id is null then 'web' else 'web_and_deal' end as order_source
    from web_orders
    left join matched on matched.order_id = web_orders.order_id

    union all

    select
        'deal:' || won_deals.deal_id,
        won_deals.contact_id,
        won_deals.amount_usd,
        won_deals.closed_at,
        won_deals.deal_id,
        'deal'
    from won_deals
    left join matched on matched.deal_id = won_deals.deal_id
    where matched.deal_id is null

),

final as (

    select
        order_id,
        contact_id,
        revenue_usd,
        ordered_at,
        row_number() over (partition by contact_id order by ordered_at, order_id) as order_number,
        order_source,
        deal_id
    from unioned

)

select * from final
