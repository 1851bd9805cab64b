{#- The lead score at the end of every day on which a contact produced a signal: the
    history MQL entries are read from (first day at or above var('mql_score_threshold')).
    Between two such days the score only decays, so it cannot cross upwards there;
    this sparse history is the daily one.

    Same rules as int_lead_scores (seeds lead_score_*), evaluated at each day's end
    (midnight UTC) on the signals before it. A signal at t is worth
    points * 0.5 ^ ((day_end - t) / half_life) = points * 2 ^ ((t - ref) / half_life)
    * 2 ^ (-(day_end - ref) / half_life), with ref the contact's first signal, so a
    running sum per rule gives every day at once (half-lives of at least two days and
    histories of a few years stay within double precision). Fit is the contact's
    current fit score.

    Incremental, per contact: each night recomputes every day of the contacts that
    changed, and keeps the others' rows. A contact changed when it has a signal within
    the last var('lead_score_history_lookback_days') (late events land there) or when
    its signals_signature differs from the one stored: a digest of its fit score and of
    every signal it holds, so a signal re-attributed to or away from it (identity
    stitching, CRM merges), a late signal of any age and a new fit score all count.
    Contacts left with no scored signal lose their rows. After any number of nights the
    table equals a full refresh (tests/integration/test_incremental_nights.py); a change
    to the scoring seeds needs --full-refresh. -#}
{{
    config(
        materialized='incremental',
        unique_key='contact_id',
        incremental_strategy='delete+insert',
        on_schema_change='append_new_columns',
        pre_hook=[
            "{% if is_incremental() %}delete from {{ this }} where contact_id not in ("
            ~ "select signals.contact_id from {{ ref('int_contact_signals') }} as signals "
            ~ "inner join {{ ref('lead_score_engagement_rules') }} as rules "
            ~ "on rules.signal = signals.signal where signals.occurred_at < {{ as_of() }}"
            ~ "){% endif %}"
        ],
    )
}}

{%- set window_start = dbt.dateadd('day', -1 * var('lead_score_history_lookback_days'), as_of()) %}

with

rules as (

    select * from {{ ref('lead_score_engagement_rules') }}

),

group_caps as (

    select rule_group, max_points from {{ ref('lead_score_engagement_groups') }}

),

signals as (

    select
        signals.contact_id,
        signals.occurred_at,
        cast(signals.occurred_at as date) as score_date,
        rules.rule_id,
        rules.rule_group,
        cast(rules.points as double precision) as points,
        cast(rules.half_life_days as double precision) as half_life_days,
        cast(rules.max_points as double precision) as max_points
    from {{ ref('int_contact_signals') }} as signals
    inner join rules on rules.signal = signals.signal
    where signals.occurred_at < {{ as_of() }}

),

fit as (

    select contact_id, fit_score from {{ ref('int_lead_scores') }}

),

signatures as (

    select
        signals.contact_id,
        {{ dbt.hash(
            "cast(coalesce(max(fit.fit_score), 0) as " ~ dbt.type_string() ~ ") || '|' || "
            ~ dbt.listagg(
                "signals.rule_id || '@' || cast(signals.occurred_at as " ~ dbt.type_string() ~ ")",
                "','",
                "order by signals.occurred_at, signals.rule_id"
            )
        ) }} as signals_signature
    from signals
    left join fit on fit.contact_id = signals.contact_id
    group by signals.contact_id

),

{% if is_incremental() %}
kept as (

    select contact_id, max(signals_signature) as signals_signature
    from {{ this }}
    group by 1

),

changed as (

    select distinct contact_id from signals where occurred_at >= {{ window_start }}
    union
    select signatures.contact_id
    from signatures
    left join kept on kept.contact_id = signatures.contact_id
    where kept.signals_signature is null
       or kept.signals_signature <> signatures.signals_signature

),
{% endif %}

scoped as (

    select signals.*
    from signals
    {% if is_incremental() %}
    inner join changed on changed.contact_id = signals.contact_id
    {% endif %}

),

reference as (

    select contact_id, min(occurred_at) as ref_at from scoped group by 1

),

days as (

    select contact_id, score_date, max(occurred_at) as scored_at
    from scoped
    group by 1, 2

),

daily_weight as (

    select
        scoped.contact_id,
        scoped.rule_id,
        scoped.score_date,
        sum(scoped.points * power(2.0,
            {{ days_between('reference.ref_at', 'scoped.occurred_at') }}
                / scoped.half_life_days)) as weight
    from scoped
    inner join reference on reference.contact_id = scoped.contact_id
    group by 1, 2, 3

),

contact_rules as (

    select distinct contact_id, rule_id, rule_group, half_life_days, max_points from scoped

),

grid as (

    select
        days.contact_id,
        days.score_date,
        days.scored_at,
        contact_rules.rule_id,
        contact_rules.rule_group,
        contact_rules.half_life_days,
        contact_rules.max_points,
        coalesce(daily_weight.weight, 0) as weight
    from days
    inner join contact_rules on contact_rules.contact_id = days.contact_id
    left join daily_weight
        on daily_weight.contact_id = days.contact_id
        and daily_weight.rule_id = contact_rules.rule_id
        and daily_weight.score_date = days.score_date

),

per_rule as (

    select
        grid.contact_id,
        grid.score_date,
        grid.scored_at,
        grid.rule_group,
        least(
            grid.max_points,
            sum(grid.weight) over (
                partition by grid.contact_id, grid.rule_id
                order by grid.score_date
                rows between unbounded preceding and current row
            ) * power(2.0, -1 * {{ days_between('reference.ref_at',
                dbt.dateadd('day', 1, 'cast(grid.score_date as timestamp)')) }}
                / grid.half_life_days)
        ) as points
    from grid
    inner join reference on reference.contact_id = grid.contact_id

),

per_group as (

    select
        per_rule.contact_id,
        per_rule.score_date,
        max(per_rule.scored_at) as scored_at,
        least(
            sum(per_rule.points),
            coalesce(max(cast(group_caps.max_points as double precision)), sum(per_rule.points))
        ) as points
    from per_rule
    left join group_caps on group_caps.rule_group = per_rule.rule_group
    group by per_rule.contact_id, per_rule.score_date, per_rule.rule_group

),

engagement as (

    select
        contact_id,
        score_date,
        max(scored_at) as scored_at,
        greatest(0, least(50, round(sum(points)))) as engagement_score
    from per_group
    group by 1, 2

),

final as (

    select
        engagement.contact_id || ':' || cast(engagement.score_date as {{ dbt.type_string() }})
            as lead_score_day_id,
        engagement.contact_id,
        engagement.score_date,
        engagement.scored_at,
        cast(coalesce(fit.fit_score, 0) as integer) as fit_score,
        cast(engagement.engagement_score as integer) as engagement_score,
        cast(coalesce(fit.fit_score, 0) + engagement.engagement_score as integer) as lead_score,
        coalesce(fit.fit_score, 0) + engagement.engagement_score
            >= {{ var('mql_score_threshold') }} as is_at_mql_threshold,
        signatures.signals_signature
    from engagement
    left join fit on fit.contact_id = engagement.contact_id
    inner join signatures on signatures.contact_id = engagement.contact_id

)

select * from final
