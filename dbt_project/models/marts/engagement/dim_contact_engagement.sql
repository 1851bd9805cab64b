{#- Per contact as of the night: activity over the last 7, 30 and 90 days, and the
    engagement segment (engaged / interested / passive) from seed engagement_segments:
    the first rule by priority whose 30-day minimums the contact meets. -#}
with

contacts as (

    select contact_id from {{ ref('int_contacts') }}
    where created_at < {{ as_of() }}

),

daily as (

    select * from {{ ref('fct_contact_engagement_daily') }}
    where activity_date >= {{ dbt.dateadd('day', -90, as_of()) }}

),

rolled as (

    select
        contacts.contact_id,
        {%- for days in [7, 30, 90] %}
        {%- for metric in ['sessions', 'page_views', 'pricing_page_views', 'demo_page_views',
                           'docs_page_views', 'key_events', 'emails_delivered', 'email_opens',
                           'email_clicks', 'email_bounces', 'email_unsubscribes'] %}
        coalesce(sum(case when daily.activity_date >= {{ dbt.dateadd('day', -days, as_of()) }}
            then daily.{{ metric }} end), 0) as {{ metric }}_{{ days }}d,
        {%- endfor %}
        {%- endfor %}
        max(daily.activity_date) as last_active_date
    from contacts
    left join daily on daily.contact_id = contacts.contact_id
    group by 1

),

rules as (

    select * from {{ ref('engagement_segments') }}

),

matched as (

    select
        rolled.contact_id,
        rules.engagement_segment,
        row_number() over (partition by rolled.contact_id order by rules.priority) as rank_n
    from rolled
    inner join rules
        on rolled.email_clicks_30d >= rules.min_email_clicks_30d
        and rolled.email_opens_30d >= rules.min_email_opens_30d
        and rolled.page_views_30d >= rules.min_page_views_30d

),

final as (

    select
        rolled.*,
        coalesce(matched.engagement_segment, 'passive') as engagement_segment
    from rolled
    left join matched on matched.contact_id = rolled.contact_id and matched.rank_n = 1

)

select * from final
