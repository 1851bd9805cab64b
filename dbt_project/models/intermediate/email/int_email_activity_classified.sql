{#- Email actions before the night, with the contact they belong to and opens split into
    people and machines: Mailchimp has no machine-open flag, so an open within
    var('machine_open_max_seconds') of the send is a privacy prefetch, not a reader. -#}
with

activity as (

    select * from {{ ref('stg_mailchimp__email_activity') }}
    where activity_at < {{ as_of() }}

),

campaigns as (

    select campaign_id, sent_at from {{ ref('stg_mailchimp__campaigns') }}

),

contacts as (

    select contact_id, email from {{ ref('stg_hubspot__contacts') }}
    where email is not null

),

final as (

    select
        activity.email_activity_id,
        contacts.contact_id,
        activity.campaign_id,
        activity.member_id,
        activity.email,
        activity.activity_type,
        activity.activity_at,
        campaigns.sent_at,
        coalesce(
            activity.activity_type = 'open'
            and {{ dbt.datediff('campaigns.sent_at', 'activity.activity_at', 'second') }}
                <= {{ var('machine_open_max_seconds') }},
            false
        ) as is_machine_open
    from activity
    left join campaigns on campaigns.campaign_id = activity.campaign_id
    left join contacts on contacts.email = activity.email

)

select * from final
