{#- One row per known contact: who they are, where they stand in the lifecycle, their
    lead score, value so far and consent per channel. -#}
with

contacts as (

    select * from {{ ref('stg_hubspot__contacts') }}
    where created_at < {{ as_of() }}

),

companies as (

    select * from {{ ref('stg_hubspot__companies') }}

),

forward_stage as (

    select
        contact_id,
        stage,
        entered_at,
        row_number() over (
            partition by contact_id order by stage_order desc, entered_at desc
        ) as rank_n
    from {{ ref('int_lifecycle_stage_entries') }}

),

orders as (

    select
        contact_id,
        count(*) as orders_count,
        sum(revenue_usd) as revenue_usd,
        min(ordered_at) as first_ordered_at,
        max(ordered_at) as last_ordered_at
    from {{ ref('int_orders_numbered') }}
    group by 1

),

members as (

    select * from {{ ref('stg_mailchimp__members') }}

),

first_touch as (

    select
        contact_id,
        coalesce(utm_medium, 'direct') as first_touch_medium,
        utm_source as first_touch_source,
        utm_campaign as first_touch_campaign,
        row_number() over (partition by contact_id order by event_at, event_id) as rank_n
    from {{ ref('int_events_attributed') }}
    where contact_id is not null and event_type = 'page'

),

scores as (

    select * from {{ ref('int_lead_scores') }}

),

staged as (

    select
        contacts.contact_id,
        forward_stage.stage as forward_stage,
        forward_stage.entered_at as forward_stage_entered_at,
        orders.last_ordered_at,
        case
            when orders.orders_count >= 1
                and {{ days_between('orders.last_ordered_at', as_of()) }} > {{ var('churn_after_days') }}
                then 'churned'
            when orders.orders_count >= 1
                and {{ days_between('orders.last_ordered_at', as_of()) }} > {{ var('lapse_after_days') }}
                then 'lapsed'
            else coalesce(forward_stage.stage, 'subscriber')
        end as lifecycle_stage
    from contacts
    left join forward_stage
        on forward_stage.contact_id = contacts.contact_id
        and forward_stage.rank_n = 1
    left join orders on orders.contact_id = contacts.contact_id

),

final as (

    select
        ---------- ids
        contacts.contact_id,
        contacts.company_id,

        ---------- person
        contacts.email,
        contacts.first_name,
        contacts.last_name,
        contacts.phone,
        contacts.country_code,
        contacts.job_title,
        companies.company_name,
        companies.industry,
        companies.employee_count,

        ---------- lifecycle
        staged.lifecycle_stage,
        case staged.lifecycle_stage
            when 'churned' then {{ dbt.dateadd('day', var('churn_after_days'), 'staged.last_ordered_at') }}
            when 'lapsed' then {{ dbt.dateadd('day', var('lapse_after_days'), 'staged.last_ordered_at') }}
            else coalesce(staged.forward_stage_entered_at, contacts.created_at)
        end as stage_entered_at,
        coalesce(staged.forward_stage, 'subscriber') as highest_forward_stage,
        contacts.hubspot_lifecycle_stage,

        ---------- scoring
        coalesce(scores.fit_score, 0) as fit_score,
        coalesce(scores.engagement_score, 0) as engagement_score,
        coalesce(scores.lead_score, 0) as lead_score,
        scores.reason_codes as lead_score_reasons,

        ---------- value
        coalesce(orders.orders_count, 0) as orders_count,
        coalesce(orders.revenue_usd, 0) as revenue_usd,
        orders.first_ordered_at,
        orders.last_ordered_at,

        ---------- attribution
        coalesce(first_touch.first_touch_medium, 'unknown') as first_touch_medium,
        first_touch.first_touch_source,
        first_touch.first_touch_campaign,

        ---------- consent
        coalesce(members.email_status, 'not_subscribed') as email_status,
        coalesce(members.email_status = 'subscribed', false) as has_email_consent,
        coalesce(members.has_ad_consent, false) as has_ad_consent,

        ---------- timestamps
        contacts.created_at,
        contacts.updated_at,
        {{ as_of() }} as as_of

    from contacts
    inner join staged on staged.contact_id = contacts.contact_id
    left join companies on companies.company_id = contacts.company_id
    left join orders on orders.contact_id = contacts.contact_id
    left join members on members.email = contacts.email
    left join scores on scores.contact_id = contacts.contact_id
    left join first_touch
        on first_touch.contact_id = contacts.contact_id
        and first_touch.rank_n = 1

)

select * from final
