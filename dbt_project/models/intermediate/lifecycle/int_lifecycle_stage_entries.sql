{#- The first time a contact entered each forward stage: awareness from its first web
    event (once stitched), the CRM's stage dates, orders (customer / repeat / loyal by
    order count, per the stage seed) and referrals. -#}
with

contacts as (

    select * from {{ ref('stg_hubspot__contacts') }}

),

stages as (

    select * from {{ ref('lifecycle_stages') }}

),

crm as (

    select contact_id, 'subscriber' as stage, subscriber_at as entered_at, 'crm' as evidence from contacts
    union all
    select contact_id, 'lead', lead_at, 'crm' from contacts
    union all
    select contact_id, 'mql', mql_at, 'crm' from contacts
    union all
    select contact_id, 'sql', sql_at, 'crm' from contacts
    union all
    select contact_id, 'opportunity', opportunity_at, 'crm' from contacts
    union all
    select contact_id, 'customer', customer_at, 'crm' from contacts

),

purchases as (

    select
        orders.contact_id,
        stages.stage,
        orders.ordered_at as entered_at,
        'order' as evidence
    from {{ ref('int_orders_numbered') }} as orders
    inner join stages
        on stages.min_orders = orders.order_number

),

{#- A subscribed list member (its opt-in time) or an identify carrying an email makes a
    contact at least a subscriber, with or without a CRM date. -#}
opt_ins as (

    select contacts.contact_id, 'subscriber' as stage, members.subscribed_at as entered_at,
           'mailchimp_opt_in' as evidence
    from {{ ref('stg_mailchimp__members') }} as members
    inner join contacts on contacts.email = members.email
    where members.subscribed_at is not null

    union all

    select contact_id, 'subscriber', min(event_at), 'identify_email'
    from {{ ref('int_events_attributed') }}
    where event_type = 'identify' and email is not null and contact_id is not null
    group by 1

),

referrals as (

    select contact_id, 'advocate' as stage, min(event_at) as entered_at, 'referral' as evidence
    from {{ ref('int_events_attributed') }}
    where event_name = 'Referral Sent' and contact_id is not null
    group by 1

),

first_seen as (

    select contact_id, 'awareness' as stage, min(event_at) as entered_at, 'web' as evidence
    from {{ ref('int_events_attributed') }}
    where contact_id is not null
    group by 1

),

unioned as (

    select * from first_seen
    union all
    select * from crm
    union all
    select * from purchases
    union all
    select * from opt_ins
    union all
    select * from referrals

),

earliest as (

    select contact_id, stage, min(entered_at) as entered_at, min(evidence) as evidence
    from unioned
    where entered_at is not null
      and entered_at < {{ as_of() }}
    group by 1, 2

),

final as (

    select
        earliest.contact_id || ':' || earliest.stage as stage_entry_id,
        earliest.contact_id,
        earliest.stage,
        stages.stage_order,
        earliest.entered_at,
        earliest.evidence
    from earliest
    inner join stages on stages.stage = earliest.stage

)

select * from final
