{#- Every web event before the night, flagged when a bot made it: a user agent that
    contains a pattern of seed bot_user_agents (crawlers, scripts, the headless
    browsers of mail-security link scanners). Bot events never enter sessions,
    identity, scores or stages; they stay here so their volume can be seen.

    Incremental, by arrival: each night deletes the events received within the trailing
    var('sessionization_lookback_days') and appends every event received after the
    latest one it kept, so an event that arrives up to that many days after Segment
    received it (a late file) lands as in a full refresh, and nights the DAG skipped are
    caught up. An event arriving later than that is left out until --full-refresh, as
    in int_sessions; so is a change to seed bot_user_agents. Erased people's rows are
    deleted here by the nightly purge (lifecycle.erasure). -#}
{%- set arrived = 'coalesce(received_at, event_at)' %}
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook=[
            "{% if is_incremental() %}delete from {{ this }} where " ~ arrived ~ " >= "
            ~ dbt.dateadd('day', -1 * var('sessionization_lookback_days'), as_of())
            ~ "{% endif %}"
        ],
    )
}}

with

events as (

    select * from {{ ref('stg_segment__events') }}
    where event_at < {{ as_of() }}
    {% if is_incremental() %}
      and {{ arrived }} > (
          select coalesce(max({{ arrived }}), cast('1900-01-01' as timestamp)) from {{ this }}
      )
    {% endif %}

),

bots as (

    select lower(pattern) as pattern from {{ ref('bot_user_agents') }}

),

{#- the patterns are matched against each distinct user agent once, not every event -#}
agents as (

    select distinct lower(user_agent) as user_agent from events where user_agent is not null

),

bot_agents as (

    select distinct agents.user_agent
    from agents
    inner join bots on agents.user_agent like '%' || bots.pattern || '%'

),

final as (

    select
        events.*,
        bot_agents.user_agent is not null as is_bot
    from events
    left join bot_agents on bot_agents.user_agent = lower(events.user_agent)

)

select * from final
