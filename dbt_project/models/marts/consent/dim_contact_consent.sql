{#- Consent per contact and channel (email, ads): the status, whether the contact may be
    reached on that channel, and when it last changed. Audiences use it so nobody
    without consent is ever sendable. -#}
with

contacts as (

    select contact_id, email from {{ ref('int_contacts') }}
    where created_at < {{ as_of() }}

),

members as (

    select * from {{ ref('stg_mailchimp__members') }}

),

joined as (

    select
        contacts.contact_id,
        members.email_status,
        members.has_ad_consent,
        members.has_email_permission,
        members.last_changed_at
    from contacts
    left join members on members.email = contacts.email

),

final as (

    select
        contact_id || ':email' as consent_id,
        contact_id,
        'email' as channel,
        case
            when email_status is null then 'not_subscribed'
            when email_status = 'cleaned' then 'cleaned_bounced'
            else email_status
        end as consent_status,
        coalesce(email_status = 'subscribed', false) as is_consented,
        last_changed_at as consent_changed_at
    from joined

    union all

    select
        contact_id || ':ads',
        contact_id,
        'ads',
        case
            when has_ad_consent then 'granted'
            when has_ad_consent is null then 'unknown'
            else 'not_granted'
        end,
        coalesce(has_ad_consent, false),
        last_changed_at
    from joined

)

select * from final
