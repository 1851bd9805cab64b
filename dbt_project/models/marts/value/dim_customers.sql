{#- One row per contact with at least one order: revenue, orders, AOV, purchase
    frequency, historic LTV, time to first purchase, RFM scores (quintiles among
    customers, 5 = best) and the named RFM segment from seed rfm_segments. -#}
with

contacts as (

    select contact_id, created_at from {{ ref('int_contacts') }}
    where created_at < {{ as_of() }}

),

orders as (

    select * from {{ ref('int_orders_numbered') }}

),

touches as (

    select * from {{ ref('int_contact_touches') }}

),

per_customer as (

    select
        orders.contact_id,
        count(*) as orders_count,
        sum(orders.revenue_usd) as revenue_usd,
        min(orders.ordered_at) as first_ordered_at,
        max(orders.ordered_at) as last_ordered_at
    from orders
    inner join contacts on contacts.contact_id = orders.contact_id
    group by 1

),

measured as (

    select
        per_customer.*,
        per_customer.revenue_usd / per_customer.orders_count as average_order_value_usd,
        {{ days_between('per_customer.last_ordered_at', as_of()) }} as days_since_last_order,
        {{ days_between('contacts.created_at', 'per_customer.first_ordered_at') }}
            as days_to_first_purchase,
        {{ days_between('per_customer.first_ordered_at', as_of()) }} as days_as_customer
    from per_customer
    inner join contacts on contacts.contact_id = per_customer.contact_id

),

scored as (

    select
        *,
        ntile(5) over (order by days_since_last_order desc) as recency_score,
        ntile(5) over (order by orders_count, revenue_usd) as frequency_score,
        ntile(5) over (order by revenue_usd) as monetary_score,
        ntile(10) over (order by revenue_usd desc) as ltv_decile
    from measured

),

rfm_rules as (

    select * from {{ ref('rfm_segments') }}

),

segmented as (

    select
        scored.contact_id,
        rfm_rules.rfm_segment,
        row_number() over (partition by scored.contact_id order by rfm_rules.priority)
            as rank_n
    from scored
    inner join rfm_rules
        on scored.recency_score between rfm_rules.r_min and rfm_rules.r_max
        and cast(round((scored.frequency_score + scored.monetary_score) / 2.0) as integer)
            between rfm_rules.fm_min and rfm_rules.fm_max

),

final as (

    select
        scored.contact_id,
        scored.orders_count,
        scored.revenue_usd,
        scored.revenue_usd as historic_ltv_usd,
        scored.average_order_value_usd,
        {#- orders per 30 days since the first order (at least one day as a customer) -#}
        scored.orders_count * 30.0
            / case when scored.days_as_customer < 1 then 1 else scored.days_as_customer end
            as orders_per_30_days,
        scored.orders_count >= 2 as is_repeat_customer,
        scored.first_ordered_at,
        scored.last_ordered_at,
        scored.days_to_first_purchase,
        scored.days_since_last_order,
        scored.recency_score,
        scored.frequency_score,
        scored.monetary_score,
        cast(scored.recency_score as {{ dbt.type_string() }})
            || cast(scored.frequency_score as {{ dbt.type_string() }})
            || cast(scored.monetary_score as {{ dbt.type_string() }}) as rfm_score,
        coalesce(segmented.rfm_segment, 'other') as rfm_segment,
        scored.ltv_decile,
        coalesce(touches.first_touch_channel, 'unknown') as first_touch_channel,
        touches.first_touch_campaign
    from scored
    left join segmented on segmented.contact_id = scored.contact_id and segmented.rank_n = 1
    left join touches on touches.contact_id = scored.contact_id

)

select * from final
