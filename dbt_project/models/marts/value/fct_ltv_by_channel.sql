{#- Value by first-touch acquisition channel and campaign: contacts acquired, customers,
    revenue, LTV per customer, repeat rate and median days to first purchase. -#}
with

contacts as (

    select contact_id, first_touch_channel, first_touch_campaign
    from {{ ref('int_contact_touches') }}

),

known as (

    select
        stg.contact_id,
        coalesce(contacts.first_touch_channel, 'unknown') as first_touch_channel,
        coalesce(contacts.first_touch_campaign, '(none)') as first_touch_campaign
    from {{ ref('int_contacts') }} as stg
    left join contacts on contacts.contact_id = stg.contact_id
    where stg.created_at < {{ as_of() }}

),

customers as (

    select * from {{ ref('dim_customers') }}

),

final as (

    select
        known.first_touch_channel || ':' || known.first_touch_campaign as channel_campaign_id,
        known.first_touch_channel,
        known.first_touch_campaign,
        count(*) as contacts_acquired,
        count(customers.contact_id) as customers,
        cast(count(customers.contact_id) as double precision) / count(*)
            as customer_conversion_rate,
        coalesce(sum(customers.revenue_usd), 0) as revenue_usd,
        avg(customers.historic_ltv_usd) as ltv_per_customer_usd,
        avg(case when customers.contact_id is not null
            then case when customers.is_repeat_customer then 1.0 else 0.0 end end)
            as repeat_rate,
        {{ median('customers.days_to_first_purchase') }} as median_days_to_first_purchase
    from known
    left join customers on customers.contact_id = known.contact_id
    group by 1, 2, 3

)

select * from final
