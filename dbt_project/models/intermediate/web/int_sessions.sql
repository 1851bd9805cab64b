{#- Web sessions per device (anonymous_id), bots' events left out: a gap longer than var('session_timeout_minutes')
    starts a new one. Incremental: each night deletes the sessions that ended within the
    trailing var('sessionization_lookback_days') (or since the previous night's last
    session, if that is earlier; plus one timeout) and re-sessionizes every event after
    the last session it kept for that device, so late events land in the right session
    and a session open at midnight is continued, not split. Events arriving later than
    the window are not re-sessionized (run with --full-refresh to rebuild). -#}
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook=[
            "{% if is_incremental() %}delete from {{ this }} where session_ended_at >= least("
            ~ dbt.dateadd('minute', -1 * var('session_timeout_minutes'),
                          dbt.dateadd('day', -1 * var('sessionization_lookback_days'), as_of()))
            ~ ", (select "
            ~ dbt.dateadd('minute', -1 * var('session_timeout_minutes'), 'max(session_ended_at)')
            ~ " from {{ this }})){% endif %}"
        ],
    )
}}

with

events as (

    select
        events.event_id,
        events.anonymous_id,
        events.user_id,
        events.event_type,
        events.page_path,
        events.utm_source,
        events.utm_medium,
        events.utm_campaign,
        events.event_at
    from {{ ref('int_web_events') }} as events
    {% if is_incremental() %}
    left join (
        select anonymous_id, max(session_ended_at) as kept_until
        from {{ this }}
        group by 1
    ) as kept on kept.anonymous_id = events.anonymous_id
    {% endif %}
    where events.event_type in ('page', 'track')
      and not events.is_bot
      and events.anonymous_id is not null
      and events.event_at < {{ as_of() }}
    {% if is_incremental() %}
      and (kept.kept_until is null or events.event_at > kept.kept_until)
    {% endif %}

),

ordered as (

    select
        *,
        lag(event_at) over (partition by anonymous_id order by event_at, event_id)
            as previous_event_at
    from events

),

flagged as (

    select
        *,
        case
            when previous_event_at is null then 1
            when {{ dbt.datediff('previous_event_at', 'event_at', 'second') }}
                > {{ var('session_timeout_minutes') }} * 60 then 1
            else 0
        end as is_session_start
    from ordered

),

numbered as (

    select
        *,
        sum(is_session_start) over (
            partition by anonymous_id order by event_at, event_id
            rows between unbounded preceding and current row
        ) as session_number
    from flagged

),

ranked as (

    select
        *,
        row_number() over (
            partition by anonymous_id, session_number order by event_at, event_id
        ) as first_n,
        row_number() over (
            partition by anonymous_id, session_number order by event_at desc, event_id desc
        ) as last_n,
        case when utm_source is not null or utm_medium is not null then
            row_number() over (
                partition by anonymous_id, session_number,
                    (utm_source is not null or utm_medium is not null)
                order by event_at, event_id
            )
        end as first_utm_n,
        case when utm_source is not null or utm_medium is not null then
            row_number() over (
                partition by anonymous_id, session_number,
                    (utm_source is not null or utm_medium is not null)
                order by event_at desc, event_id desc
            )
        end as last_utm_n
    from numbered

),

final as (

    select
        {{ dbt.hash("anonymous_id || '|' || cast(min(event_at) as " ~ dbt.type_string() ~ ")") }}
            as session_id,
        anonymous_id,
        max(user_id) as user_id,
        min(event_at) as session_started_at,
        max(event_at) as session_ended_at,
        count(*) as events_count,
        sum(case when event_type = 'page' then 1 else 0 end) as page_views,
        max(case when first_n = 1 then page_path end) as landing_page_path,
        max(case when last_n = 1 then page_path end) as exit_page_path,
        max(case when first_utm_n = 1 then utm_source end) as first_utm_source,
        max(case when first_utm_n = 1 then utm_medium end) as first_utm_medium,
        max(case when first_utm_n = 1 then utm_campaign end) as first_utm_campaign,
        max(case when last_utm_n = 1 then utm_source end) as last_utm_source,
        max(case when last_utm_n = 1 then utm_medium end) as last_utm_medium,
        max(case when last_utm_n = 1 then utm_campaign end) as last_utm_campaign
    from ranked
    group by anonymous_id, session_number

)

select * from final
