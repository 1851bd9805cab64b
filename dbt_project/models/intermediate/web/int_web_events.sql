{#- Every web event before the night, flagged when a bot made it: a user agent that
    contains a pattern of seed bot_user_agents (crawlers, scripts, the headless
    browsers of mail-security link scanners). Bot events never enter sessions,
    identity, scores or stages; they stay here so their volume can be seen. -#}
with

events as (

    select * from {{ ref('stg_segment__events') }}
    where event_at < {{ as_of() }}

),

bots as (

    select lower(pattern) as pattern from {{ ref('bot_user_agents') }}

),

bot_events as (

    select distinct events.event_id
    from events
    inner join bots on lower(events.user_agent) like '%' || bots.pattern || '%'

),

final as (

    select
        events.*,
        bot_events.event_id is not null as is_bot
    from events
    left join bot_events on bot_events.event_id = events.event_id

)

select * from final
