{#- Fit (who they are) + engagement (what they did, decayed by half-life) per contact,
    with the rules that contributed most as reason codes. Rules live in seeds. -#}
with

contacts as (

    select
        contacts.contact_id,
        contacts.job_title,
        companies.industry,
        companies.employee_count
    from {{ ref('stg_hubspot__contacts') }} as contacts
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

fit_hits as (

    select attributes.contact_id, rules.rule_id, rules.points, rules.reason
    from attributes
    inner join {{ ref('lead_score_fit_rules') }} as rules
        on rules.attribute = attributes.attribute
        and (
            (rules.operator = 'eq' and attributes.value_text = cast(rules.match_value as varchar))
            or (rules.operator = 'gte'
                and attributes.value_number >= cast(rules.match_value as double precision))
            or (rules.operator = 'lt'
                and attributes.value_number < cast(rules.match_value as double precision))
        )

),

engagement_hits as (

    select
        signals.contact_id,
        rules.rule_id,
        rules.reason,
        least(
            cast(rules.max_points as double precision),
            sum(
                rules.points * power(
                    0.5,
                    {{ days_between('signals.occurred_at', as_of()) }} / rules.half_life_days
                )
            )
        ) as points
    from {{ ref('int_contact_signals') }} as signals
    inner join {{ ref('lead_score_engagement_rules') }} as rules
        on rules.signal = signals.signal
    where signals.occurred_at < {{ as_of() }}
    group by 1, 2, 3, rules.max_points

),

hits as (

    select contact_id, rule_id, cast(points as double precision) as points, reason, 'fit' as kind
    from fit_hits
    union all
    select contact_id, rule_id, points, reason, 'engagement' from engagement_hits

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
        {{ dbt.listagg("rule_id", "','", "order by rank_n") }} as reason_codes
    from ranked
    where rank_n <= 3
    group by 1

),

totals as (

    select
        contacts.contact_id,
        coalesce(sum(case when hits.kind = 'fit' then hits.points end), 0) as fit_points,
        coalesce(sum(case when hits.kind = 'engagement' then hits.points end), 0)
            as engagement_points
    from contacts
    left join hits on hits.contact_id = contacts.contact_id
    group by 1

),

final as (

    select
        totals.contact_id,
        greatest(0, least(50, round(totals.fit_points))) as fit_score,
        greatest(0, least(50, round(totals.engagement_points))) as engagement_score,
        greatest(0, least(50, round(totals.fit_points)))
            + greatest(0, least(50, round(totals.engagement_points))) as lead_score,
        reasons.reason_codes
    from totals
    left join reasons on reasons.contact_id = totals.contact_id

)

select * from final
