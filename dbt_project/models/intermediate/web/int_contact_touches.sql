{#- Per contact: the channel and campaign of its first session (first touch) and of its
    last session that came from a marketing channel (last non-direct touch). -#}
with

sessions as (

    select * from {{ ref('int_sessions_attributed') }}
    where contact_id is not null

),

ranked as (

    select
        *,
        row_number() over (
            partition by contact_id order by session_started_at, session_id
        ) as first_n,
        row_number() over (
            partition by contact_id
            order by case when last_touch_channel = 'direct' then 0 else 1 end desc,
                session_started_at desc, session_id
        ) as last_n
    from sessions

),

final as (

    select
        contact_id,
        max(case when first_n = 1 then first_touch_channel end) as first_touch_channel,
        max(case when first_n = 1 then first_utm_source end) as first_touch_source,
        max(case when first_n = 1 then first_utm_medium end) as first_touch_medium,
        max(case when first_n = 1 then first_utm_campaign end) as first_touch_campaign,
        max(case when last_n = 1 then last_touch_channel end) as last_touch_channel,
        max(case when last_n = 1 then last_utm_campaign end) as last_touch_campaign,
        count(*) as sessions_count,
        min(session_started_at) as first_session_at,
        max(session_started_at) as last_session_at
    from ranked
    group by 1

)

select * from final
