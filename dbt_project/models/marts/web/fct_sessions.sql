{#- One row per web session (30-minute inactivity rule per device), with its contact
    when known and its first- and last-touch channel. -#}
with

sessions as (

    select * from {{ ref('int_sessions_attributed') }}

),

final as (

    select
        session_id,
        contact_id,
        anonymous_id,
        user_id,
        session_started_at,
        session_ended_at,
        {{ days_between('session_started_at', 'session_ended_at') }} * 1440 as duration_minutes,
        events_count,
        page_views,
        landing_page_path,
        exit_page_path,
        first_touch_channel,
        first_utm_source,
        first_utm_medium,
        first_utm_campaign,
        last_touch_channel,
        last_utm_campaign
    from sessions

)

select * from final
