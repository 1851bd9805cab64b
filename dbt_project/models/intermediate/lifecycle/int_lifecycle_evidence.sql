{#- Every piece of evidence that a contact entered a lifecycle stage, one row each, with
    its kind (seed stage_evidence), when, and the id of the record it comes from:
    - awareness: the first web event of a linked device (web_visit), the CRM record's
      creation (crm_record);
    - subscriber: the list member's sign-up time, else its opt-in time
      (mailchimp_opt_in), the first identify
      carrying the contact's email (identify_email);
    - lead: a Form Submitted with a lead form id (seed lead_forms), a Content Downloaded;
    - mql: the first day of int_lead_score_history at the threshold (lead_score);
    - sql: a deal created (deal_created); opportunity: a deal entering a stage seed
      deal_stages maps to opportunity (deal_stage, from the stage history);
    - customer / repeat_customer / loyal: the order reaching the stage's min_orders;
    - advocate: someone signing up with the contact's referral code (referral_signup);
    - every stage with a HubSpot date property: the CRM's date (crm_date).
    Which evidence makes the entry is decided in int_lifecycle_stage_entries. -#}
with

contacts as (

    select * from {{ ref('int_contacts') }}

),

merges as (

    select * from {{ ref('int_contact_merges') }}

),

events as (

    select * from {{ ref('int_events_attributed') }}
    where contact_id is not null

),

stages as (

    select * from {{ ref('lifecycle_stages') }}

),

first_visit as (

    select
        contact_id,
        event_id,
        event_at,
        row_number() over (partition by contact_id order by event_at, event_id) as rank_n
    from events

),

emails as (

    select email, min(contact_id) as contact_id
    from {{ ref('int_contact_emails') }}
    group by 1

),

first_identify as (

    select
        events.contact_id,
        events.event_id,
        events.event_at,
        row_number() over (
            partition by events.contact_id order by events.event_at, events.event_id
        ) as rank_n
    from events
    inner join emails
        on emails.email = events.email and emails.contact_id = events.contact_id
    where events.event_type = 'identify'

),

opt_ins as (

    -- the sign-up time when the list knows it (the form's submit: a subscriber from
    -- then; a double opt-in confirms later), else the opt-in time (an imported member
    -- has only the import's)
    select
        emails.contact_id,
        members.member_id,
        least(
            coalesce(members.signup_at, members.subscribed_at),
            coalesce(members.opted_in_at, members.subscribed_at)
        ) as opted_in_at
    from {{ ref('stg_mailchimp__members') }} as members
    inner join emails on emails.email = members.email
    where members.subscribed_at is not null

),

lead_forms as (

    select form_id from {{ ref('lead_forms') }} where makes_lead

),

score_crossings as (

    select
        contact_id,
        lead_score_day_id,
        scored_at,
        row_number() over (partition by contact_id order by score_date) as rank_n
    from {{ ref('int_lead_score_history') }}
    where is_at_mql_threshold and score_date < cast({{ as_of() }} as date)

),

deals as (

    select deals.deal_id, merges.contact_id, deals.created_at
    from {{ ref('stg_hubspot__deals') }} as deals
    inner join merges on merges.merged_contact_id = deals.contact_id

),

deal_stage_entries as (

    select deals.contact_id, history.deal_stage_change_id, history.changed_at, map.lifecycle_stage
    from {{ ref('stg_hubspot__deal_stage_history') }} as history
    inner join deals on deals.deal_id = history.deal_id
    inner join {{ ref('deal_stages') }} as map on map.deal_stage = history.deal_stage

),

referrers as (

    select traits_referral_code as referral_code, min(contact_id) as contact_id
    from events
    where event_type = 'identify' and traits_referral_code is not null
    group by 1
    having count(distinct contact_id) = 1

),

referral_signups as (

    select referrers.contact_id, signups.event_id, signups.event_at
    from {{ ref('int_web_events') }} as signups
    inner join referrers on referrers.referral_code = signups.referral_code
    where signups.event_name = 'Signed Up' and not signups.is_bot

),

crm as (

    {%- set crm_dates = [('subscriber', 'subscriber_at', 'hs_lifecyclestage_subscriber_date'),
                          ('lead', 'lead_at', 'hs_lifecyclestage_lead_date'),
                          ('mql', 'mql_at', 'hs_lifecyclestage_marketingqualifiedlead_date'),
                          ('sql', 'sql_at', 'hs_lifecyclestage_salesqualifiedlead_date'),
                          ('opportunity', 'opportunity_at', 'hs_lifecyclestage_opportunity_date'),
                          ('customer', 'customer_at', 'hs_lifecyclestage_customer_date'),
                          ('advocate', 'evangelist_at', 'hs_lifecyclestage_evangelist_date')] %}
    {%- for stage, column, prop in crm_dates %}
    select contact_id, '{{ stage }}' as stage, 'crm_date' as evidence_kind,
           contact_id || ':{{ prop }}' as evidence_id, {{ column }} as occurred_at
    from contacts
    where {{ column }} is not null
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}

),

unioned as (

    select contact_id, 'awareness' as stage, 'web_visit' as evidence_kind,
           event_id as evidence_id, event_at as occurred_at
    from first_visit where rank_n = 1

    union all

    select contact_id, 'awareness', 'crm_record', contact_id, created_at from contacts

    union all

    select contact_id, 'subscriber', 'mailchimp_opt_in', member_id, opted_in_at from opt_ins

    union all

    select contact_id, 'subscriber', 'identify_email', event_id, event_at
    from first_identify where rank_n = 1

    union all

    select events.contact_id, 'lead', 'form_submitted', events.event_id, events.event_at
    from events
    inner join lead_forms on lead_forms.form_id = events.form_id
    where events.event_name = 'Form Submitted'

    union all

    select contact_id, 'lead', 'content_downloaded', event_id, event_at
    from events
    where event_name = 'Content Downloaded'

    union all

    select contact_id, 'mql', 'lead_score', lead_score_day_id, scored_at
    from score_crossings where rank_n = 1

    union all

    select contact_id, 'sql', 'deal_created', deal_id, created_at from deals

    union all

    select contact_id, lifecycle_stage, 'deal_stage', deal_stage_change_id, changed_at
    from deal_stage_entries
    where lifecycle_stage = 'opportunity'

    union all

    select orders.contact_id, stages.stage, 'order', orders.order_id, orders.ordered_at
    from {{ ref('int_orders_numbered') }} as orders
    inner join stages on stages.min_orders = orders.order_number

    union all

    select contact_id, 'advocate', 'referral_signup', event_id, event_at from referral_signups

    union all

    select * from crm

),

final as (

    select
        unioned.contact_id || ':' || unioned.stage || ':' || unioned.evidence_kind || ':'
            || unioned.evidence_id as evidence_row_id,
        unioned.contact_id,
        unioned.stage,
        unioned.evidence_kind,
        unioned.evidence_id,
        unioned.occurred_at
    from unioned
    inner join contacts on contacts.contact_id = unioned.contact_id
    where unioned.occurred_at is not null
      and unioned.occurred_at < {{ as_of() }}

)

select * from final
