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

{#- One row per source per contact-day, each carrying only its own counts, then one
    aggregate: a single hash table over the night's contact-days, where a union of the
    days and five joins back to the sources held six (at a million contacts that ran
    DuckDB out of its 4 GiB). Each source above has one row per contact-day, so the sums
    are its counts. -#}
activity as (

    select contact_id, activity_date, 0 as sessions, page_views, pricing_page_views,
        demo_page_views, docs_page_views, key_events, 0 as emails_delivered, 0 as email_opens,
        0 as email_machine_opens, 0 as email_clicks, 0 as email_bounces,
        0 as email_unsubscribes
    from web
    union all
    select contact_id, activity_date, sessions, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
    from sessions
    union all
    select contact_id, activity_date, 0, 0, 0, 0, 0, 0, 0, email_opens, email_machine_opens,
        email_clicks, email_bounces, 0
    from email
    union all
    select contact_id, activity_date, 0, 0, 0, 0, 0, 0, emails_delivered, 0, 0, 0, 0, 0
    from delivered
    union all
    select contact_id, activity_date, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, email_unsubscribes
    from unsubscribes

),

final as (

    select
        contact_id || ':' || cast(activity_date as {{ dbt.type_string() }}) as contact_day_id,
        contact_id,
        activity_date,
        cast(sum(sessions) as bigint) as sessions,
        cast(sum(page_views) as bigint) as page_views,
        cast(sum(pricing_page_views) as bigint) as pricing_page_views,
        cast(sum(demo_page_views) as bigint) as demo_page_views,
        cast(sum(docs_page_views) as bigint) as docs_page_views,
        cast(sum(key_events) as bigint) as key_events,
        cast(sum(emails_delivered) as bigint) as emails_delivered,
        cast(sum(email_opens) as bigint) as email_opens,
        cast(sum(email_machine_opens) as bigint) as email_machine_opens,
        cast(sum(email_clicks) as bigint) as email_clicks,
        cast(sum(email_bounces) as bigint) as email_bounces,
        cast(sum(email_unsubscribes) as bigint) as email_unsubscribes
    from activity
    group by contact_id, activity_date

)

select * from final
