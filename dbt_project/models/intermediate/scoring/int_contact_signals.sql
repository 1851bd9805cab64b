{#- Behavioural signals that engagement scoring rules refer to, one row per occurrence. -#}
with

web as (

    select
        contact_id,
        case
            when event_type = 'page' and page_path = '/pricing' then 'page_view_pricing'
            when event_type = 'page' and page_path = '/demo' then 'page_view_demo'
            when event_name = 'Demo Requested' then 'demo_requested'
            when event_name = 'Form Submitted' then 'form_submitted'
        end as signal,
        event_at as occurred_at
    from {{ ref('int_events_attributed') }}
    where contact_id is not null

    union all

    select contact_id, 'page_view', event_at
    from {{ ref('int_events_attributed') }}
    where contact_id is not null and event_type = 'page'

),

email as (

    select
        contacts.contact_id,
        'email_' || activity.activity_type as signal,
        activity.activity_at as occurred_at
    from {{ ref('stg_mailchimp__email_activity') }} as activity
    inner join {{ ref('stg_hubspot__contacts') }} as contacts
        on contacts.email = activity.email
    where activity.activity_type in ('open', 'click')
      and activity.activity_at < {{ as_of() }}

),

final as (

    select * from web where signal is not null
    union all
    select * from email

)

select * from final
