{#- Behavioural signals that engagement scoring rules refer to, one row per occurrence.
    Bots' web events (int_events_attributed has none), privacy-proxy opens and
    link-scanner clicks are not signals. -#}
with

events as (

    select * from {{ ref('int_events_attributed') }}
    where contact_id is not null

),

key_pages as (

    select * from {{ ref('key_pages') }}

),

lead_forms as (

    select form_id from {{ ref('lead_forms') }} where makes_lead

),

web as (

    select
        events.contact_id,
        case
            when events.event_type = 'page' and key_pages.page_group is not null
                then 'page_view_' || key_pages.page_group
            when events.event_name = 'Demo Requested' then 'demo_requested'
            {#- a lead form (seed lead_forms) or gated content: the lead conversion -#}
            when events.event_name = 'Form Submitted' and lead_forms.form_id is not null
                then 'lead_conversion'
            when events.event_name = 'Content Downloaded' then 'lead_conversion'
            when events.event_name = 'Form Submitted' then 'form_submitted'
            when events.event_name = 'Checkout Started' then 'checkout_started'
        end as signal,
        events.event_at as occurred_at
    from events
    left join key_pages
        on events.event_type = 'page'
        and events.page_path like key_pages.page_path_prefix || '%'
    left join lead_forms on lead_forms.form_id = events.form_id

    union all

    select contact_id, 'page_view', event_at
    from events
    where event_type = 'page'

),

email as (

    select
        contact_id,
        'email_' || activity_type as signal,
        activity_at as occurred_at
    from {{ ref('int_email_activity_classified') }}
    where activity_type in ('open', 'click')
      and not is_machine_open
      and not is_machine_click
      and contact_id is not null

),

final as (

    select * from web where signal is not null
    union all
    select * from email

)

select * from final
