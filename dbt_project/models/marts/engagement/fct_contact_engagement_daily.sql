{#- Per contact per day with any activity: web (sessions, page views, key pages, key
    events) and email (delivered, human opens, machine opens, clicks, bounces,
    unsubscribes). Machine opens are counted apart and never as opens. -#}
with

web as (

    select
        events.contact_id,
        cast(events.event_at as date) as activity_date,
        sum(case when events.event_type = 'page' then 1 else 0 end) as page_views,
        sum(case when key_pages.page_group = 'pricing' then 1 else 0 end) as pricing_page_views,
        sum(case when key_pages.page_group = 'demo' then 1 else 0 end) as demo_page_views,
        sum(case when key_pages.page_group = 'docs' then 1 else 0 end) as docs_page_views,
        sum(case when events.event_type = 'track' then 1 else 0 end) as key_events
    from {{ ref('int_events_attributed') }} as events
    left join {{ ref('key_pages') }} as key_pages
        on events.event_type = 'page'
        and events.page_path like key_pages.page_path_prefix || '%'
    where events.contact_id is not null
      and events.event_type in ('page', 'track')
    group by 1, 2

),

sessions as (

    select contact_id, cast(session_started_at as date) as activity_date, count(*) as sessions
    from {{ ref('int_sessions_attributed') }}
    where contact_id is not null
    group by 1, 2

),

email as (

    select
        contact_id,
        cast(activity_at as date) as activity_date,
        sum(case when activity_type = 'open' and not is_machine_open then 1 else 0 end)
            as email_opens,
        sum(case when is_machine_open then 1 else 0 end) as email_machine_opens,
        sum(case when activity_type = 'click' then 1 else 0 end) as email_clicks,
        sum(case when activity_type = 'bounce' then 1 else 0 end) as email_bounces
    from {{ ref('int_email_activity_classified') }}
    where contact_id is not null
    group by 1, 2

),

delivered as (

    select contact_id, cast(delivered_at as date) as activity_date, count(*) as emails_delivered
    from {{ ref('int_email_deliveries') }}
    where contact_id is not null
    group by 1, 2

),

unsubscribes as (

    select contacts.contact_id, cast(members.last_changed_at as date) as activity_date,
        count(*) as email_unsubscribes
    from {{ ref('stg_mailchimp__members') }} as members
    inner join (
        select distinct contact_id, email from {{ ref('int_contact_emails') }}
    ) as contacts on contacts.email = members.email
    where members.email_status = 'unsubscribed'
      and members.last_changed_at < {{ as_of() }}
    group by 1, 2

),

days as (

    select contact_id, activity_date from web
    union
    select contact_id, activity_date from sessions
    union
    select contact_id, activity_date from email
    union
    select contact_id, activity_date from delivered
    union
    select contact_id, activity_date from unsubscribes

),

final as (

    select
        days.contact_id || ':' || cast(days.activity_date as {{ dbt.type_string() }})
            as contact_day_id,
        days.contact_id,
        days.activity_date,
        coalesce(sessions.sessions, 0) as sessions,
        coalesce(web.page_views, 0) as page_views,
        coalesce(web.pricing_page_views, 0) as pricing_page_views,
        coalesce(web.demo_page_views, 0) as demo_page_views,
        coalesce(web.docs_page_views, 0) as docs_page_views,
        coalesce(web.key_events, 0) as key_events,
        coalesce(delivered.emails_delivered, 0) as emails_delivered,
        coalesce(email.email_opens, 0) as email_opens,
        coalesce(email.email_machine_opens, 0) as email_machine_opens,
        coalesce(email.email_clicks, 0) as email_clicks,
        coalesce(email.email_bounces, 0) as email_bounces,
        coalesce(unsubscribes.email_unsubscribes, 0) as email_unsubscribes
    from days
    left join web
        on web.contact_id = days.contact_id and web.activity_date = days.activity_date
    left join sessions
        on sessions.contact_id = days.contact_id and sessions.activity_date = days.activity_date
    left join email
        on email.contact_id = days.contact_id and email.activity_date = days.activity_date
    left join delivered
        on delivered.contact_id = days.contact_id and delivered.activity_date = days.activity_date
    left join unsubscribes
        on unsubscribes.contact_id = days.contact_id
        and unsubscribes.activity_date = days.activity_date

)

select * from final
