{#- Who each campaign reached: list members subscribed when it was sent, less bounces.
    Mailchimp reports no "delivered" action, so delivery is derived from membership. -#}
with

campaigns as (

    select campaign_id, sent_at, list_id from {{ ref('stg_mailchimp__campaigns') }}
    where sent_at < {{ as_of() }}

),

members as (

    select member_id, list_id, email, email_status, subscribed_at, last_changed_at
    from {{ ref('stg_mailchimp__members') }}

),

contacts as (

    select email, min(contact_id) as contact_id
    from {{ ref('int_contact_emails') }}
    group by 1

),

bounces as (

    select distinct campaign_id, member_id
    from {{ ref('int_email_activity_classified') }}
    where activity_type = 'bounce'

),

recipients as (

    select
        campaigns.campaign_id,
        campaigns.sent_at,
        members.member_id,
        members.email
    from campaigns
    inner join members
        on members.list_id = campaigns.list_id
        and members.subscribed_at <= campaigns.sent_at
        and (members.email_status = 'subscribed' or members.last_changed_at > campaigns.sent_at)

),

final as (

    select
        recipients.campaign_id || ':' || recipients.member_id as delivery_id,
        contacts.contact_id,
        recipients.campaign_id,
        recipients.member_id,
        recipients.sent_at as delivered_at
    from recipients
    left join bounces
        on bounces.campaign_id = recipients.campaign_id
        and bounces.member_id = recipients.member_id
    left join contacts on contacts.email = recipients.email
    where bounces.member_id is null

)

select * from final
