{#- The consent seed names at least one source for every purpose, each purpose under
    one channel and one conflict rule (marts.dim_contact_consent has a row per contact
    and purpose only for purposes the seed names). -#}
with

wanted as (

    select 'email_marketing' as purpose, 'email' as channel
    union all select 'ad_user_data', 'ads'
    union all select 'ad_personalization', 'ads'

),

seeded as (

    select
        purpose,
        count(distinct channel) as channels,
        max(channel) as channel,
        count(distinct on_conflict) as conflict_rules
    from {{ ref('consent_sources') }}
    group by 1

)

select wanted.purpose
from wanted
left join seeded on seeded.purpose = wanted.purpose
where seeded.purpose is null
   or seeded.channels <> 1
   or seeded.channel <> wanted.channel
   or seeded.conflict_rules <> 1
