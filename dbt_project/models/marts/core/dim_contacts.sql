{#- One row per known contact: who they are, where they stand in the lifecycle, their
    lead score and grade, engagement and value so far, and consent per channel (from
    marts.dim_contact_consent, never derived here). -#}
with

contacts as (

    select * from {{ ref('int_contacts') }}

),

companies as (

    select * from {{ ref('stg_hubspot__companies') }}

),

current_stage as (

    select * from {{ ref('int_lifecycle_stage_timeline') }}
    where valid_to is null

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

consent as (

    -- per contact, from the one consent model (marts.dim_contact_consent)
    select
        contact_id,
        max(case when purpose = 'email_marketing' and is_granted then 1 else 0 end) = 1
            as has_email_consent,
        max(case when purpose = 'ad_user_data' and is_granted then 1 else 0 end) = 1
            as has_ad_user_data_consent,
        max(case when purpose = 'ad_personalization' and is_granted then 1 else 0 end) = 1
            as has_ad_personalization_consent,
        max(email_status) as email_status
    from {{ ref('dim_contact_consent') }}
    group by 1

),

touches as (

    select * from {{ ref('int_contact_touches') }}

),

scores as (

    select * from {{ ref('int_lead_scores') }}

),

engagement as (

    select contact_id, engagement_segment from {{ ref('dim_contact_engagement') }}

),

customers as (

    select contact_id, rfm_segment from {{ ref('dim_customers') }}

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
        coalesce(current_stage.stage, 'subscriber') as lifecycle_stage,
        coalesce(current_stage.valid_from, contacts.created_at) as stage_entered_at,
        coalesce(current_stage.forward_stage, 'subscriber') as highest_forward_stage,
        contacts.hubspot_lifecycle_stage,

        ---------- scoring
        coalesce(scores.fit_score, 0) as fit_score,
        coalesce(scores.engagement_score, 0) as engagement_score,
        coalesce(scores.lead_score, 0) as lead_score,
        coalesce(scores.lead_grade, 'C3') as lead_grade,
        coalesce(scores.is_mql_by_score, false) as is_mql_by_score,
        scores.reason_codes as lead_score_reasons,
        scores.reason_text as lead_score_reason_text,

        ---------- segments
        coalesce(engagement.engagement_segment, 'passive') as engagement_segment,
        customers.rfm_segment,

        ---------- value
        coalesce(orders.orders_count, 0) as orders_count,
        coalesce(orders.revenue_usd, 0) as revenue_usd,
        orders.first_ordered_at,
        orders.last_ordered_at,

        ---------- attribution
        case
            when touches.contact_id is null then 'unknown'
            else coalesce(touches.first_touch_medium, 'direct')
        end as first_touch_medium,
        touches.first_touch_source,
        touches.first_touch_campaign,
        coalesce(touches.first_touch_channel, 'unknown') as first_touch_channel,
        coalesce(touches.last_touch_channel, 'unknown') as last_touch_channel,

        ---------- consent (marts.dim_contact_consent)
        coalesce(consent.email_status, 'not_subscribed') as email_status,
        coalesce(consent.has_email_consent, false) as has_email_consent,
        coalesce(
            consent.has_ad_user_data_consent and consent.has_ad_personalization_consent, false
        ) as has_ad_consent,
        coalesce(consent.has_ad_user_data_consent, false) as has_ad_user_data_consent,
        coalesce(consent.has_ad_personalization_consent, false)
            as has_ad_personalization_consent,

        ---------- timestamps
        contacts.created_at,
        contacts.updated_at,
        {{ as_of() }} as as_of

    from contacts
    left join current_stage on current_stage.contact_id = contacts.contact_id
    left join companies on companies.company_id = contacts.company_id
    left join orders on orders.contact_id = contacts.contact_id
    left join consent on consent.contact_id = contacts.contact_id
    left join scores on scores.contact_id = contacts.contact_id
    left join touches on touches.contact_id = contacts.contact_id
    left join engagement on engagement.contact_id = contacts.contact_id
    left join customers on customers.contact_id = contacts.contact_id

)

select * from final
