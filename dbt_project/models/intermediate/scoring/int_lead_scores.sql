{#- Fit (who they are) + engagement (what they did, decayed by half-life) per contact.
    Points are capped per rule, then per rule group (seeds *_groups), then each part at
    50; the combined score is 0-100. The grade is the fit letter (A-C) and engagement
    digit (1-3) from seed lead_grade_bands. Reason codes are the rules that contributed
    most. Every number here lives in a seed or a var. -#}
with

contacts as (

    select
        contacts.contact_id,
        contacts.job_title,
        companies.industry,
        companies.employee_count
    from {{ ref('int_contacts') }} as contacts
    left join {{ ref('stg_hubspot__companies') }} as companies
        on companies.company_id = contacts.company_id

),

attributes as (

    select contact_id, 'job_title' as attribute, job_title as value_text,
           cast(null as double precision) as value_number
    from contacts
    union all
    select contact_id, 'industry', industry, null from contacts
    union all
    select contact_id, 'employee_count', null, cast(employee_count as double precision)
    from contacts

),

fit_rules as (

    select * from {{ ref('lead_score_fit_rules') }}

),

fit_hits as (

    select
        attributes.contact_id,
        fit_rules.rule_id,
        fit_rules.rule_group,
        cast(fit_rules.points as double precision) as points,
        fit_rules.reason
    from attributes
    inner join fit_rules
        on fit_rules.attribute = attributes.attribute
        and (
            (fit_rules.operator = 'eq'
                and attributes.value_text = cast(fit_rules.match_value as {{ dbt.type_string() }}))
            or (fit_rules.operator = 'gte'
                and attributes.value_number >= cast(fit_rules.match_value as double precision))
            or (fit_rules.operator = 'lt'
                and attributes.value_number < cast(fit_rules.match_value as double precision))
        )

),

engagement_rules as (

    select * from {{ ref('lead_score_engagement_rules') }}

),

{#- Each occurrence is worth points * 0.5 ^ (age in days / half-life). -#}
engagement_hits as (

    select
        signals.contact_id,
        engagement_rules.rule_id,
        engagement_rules.rule_group,
        engagement_rules.reason,
        least(
            cast(engagement_rules.max_points as double precision),
            sum(
                engagement_rules.points * power(
                    0.5,
                    {{ days_between('signals.occurred_at', as_of()) }}
                        / engagement_rules.half_life_days
                )
            )
        ) as points
    from {{ ref('int_contact_signals') }} as signals
    inner join engagement_rules on engagement_rules.signal = signals.signal
    where signals.occurred_at < {{ as_of() }}
    group by 1, 2, 3, 4, engagement_rules.max_points

),

hits as (

    select contact_id, rule_id, rule_group, points, reason, 'fit' as kind from fit_hits
    union all
    select contact_id, rule_id, rule_group, points, reason, 'engagement' from engagement_hits

),

group_caps as (

    select rule_group, max_points, 'fit' as kind from {{ ref('lead_score_fit_groups') }}
    union all
    select rule_group, max_points, 'engagement' from {{ ref('lead_score_engagement_groups') }}

),

groups as (

    select
        hits.contact_id,
        hits.kind,
        hits.rule_group,
        least(
            sum(hits.points),
            coalesce(cast(max(group_caps.max_points) as double precision), sum(hits.points))
        ) as points
    from hits
    left join group_caps
        on group_caps.rule_group = hits.rule_group
        and group_caps.kind = hits.kind
    group by 1, 2, 3

),

ranked as (

    select
        *,
        row_number() over (partition by contact_id order by points desc, rule_id) as rank_n
    from hits
    where points > 0.5

),

reasons as (

    select
        contact_id,
        {{ dbt.listagg("rule_id", "','", "order by rank_n") }} as reason_codes,
        {{ dbt.listagg("reason", "'; '", "order by rank_n") }} as reason_text
    from ranked
    where rank_n <= 3
    group by 1

),

totals as (

    select
        contacts.contact_id,
        greatest(0, least(50, round(coalesce(
            sum(case when groups.kind = 'fit' then groups.points end), 0)))) as fit_score,
        greatest(0, least(50, round(coalesce(
            sum(case when groups.kind = 'engagement' then groups.points end), 0))))
            as engagement_score
    from contacts
    left join groups on groups.contact_id = contacts.contact_id
    group by 1

),

bands as (

    select * from {{ ref('lead_grade_bands') }}

),

graded as (

    select
        totals.contact_id,
        max(case when bands.dimension = 'fit' and totals.fit_score >= bands.min_score
            then bands.min_score end) as fit_band_min,
        max(case when bands.dimension = 'engagement' and totals.engagement_score >= bands.min_score
            then bands.min_score end) as engagement_band_min
    from totals
    cross join bands
    group by 1

),

final as (

    select
        totals.contact_id,
        cast(totals.fit_score as integer) as fit_score,
        cast(totals.engagement_score as integer) as engagement_score,
        cast(totals.fit_score + totals.engagement_score as integer) as lead_score,
        fit_band.grade || engagement_band.grade as lead_grade,
        totals.fit_score + totals.engagement_score >= {{ var('mql_score_threshold') }}
            as is_mql_by_score,
        reasons.reason_codes,
        reasons.reason_text
    from totals
    inner join graded on graded.contact_id = totals.contact_id
    left join bands as fit_band
        on fit_band.dimension = 'fit' and fit_band.min_score = graded.fit_band_min
    left join bands as engagement_band
        on engagement_band.dimension = 'engagement'
        and engagement_band.min_score = graded.engagement_band_min
    left join reasons on reasons.contact_id = totals.contact_id

)

select * from final
