{#- Every identifier we have seen, mapped to one contact, with how the link was made:
    the CRM email, the Mailchimp member id (the subscriber hash an email click-through
    carries), web user ids through identify events' traits.email (sign-up, form fill,
    log-in), and anonymous ids through events that carry both ids. An identifier that
    would map to two contacts is left out: an event is better unattributed than
    attributed to the wrong person. -#}
with

contacts as (

    select contact_id, email, created_at
    from {{ ref('stg_hubspot__contacts') }}
    where email is not null

),

identifies as (

    select user_id, email, event_at
    from {{ ref('stg_segment__events') }}
    where event_type = 'identify'
      and user_id is not null
      and email is not null
      and event_at < {{ as_of() }}

),

user_links as (

    select
        identifies.user_id,
        contacts.contact_id,
        min(identifies.event_at) as linked_at
    from identifies
    inner join contacts on contacts.email = identifies.email
    group by 1, 2

),

users as (

    select user_id, min(contact_id) as contact_id, min(linked_at) as linked_at
    from user_links
    group by 1
    having count(distinct contact_id) = 1

),

anonymous_links as (

    select
        events.anonymous_id,
        users.contact_id,
        min(events.event_at) as linked_at
    from {{ ref('stg_segment__events') }} as events
    inner join users on users.user_id = events.user_id
    where events.anonymous_id is not null
      and events.event_at < {{ as_of() }}
    group by 1, 2

),

anonymous as (

    select anonymous_id, min(contact_id) as contact_id, min(linked_at) as linked_at
    from anonymous_links
    group by 1
    having count(distinct contact_id) = 1

),

unioned as (

    select 'email' as identifier_type, email as identifier, contact_id,
           'crm_email' as link_method, created_at as linked_at
    from contacts

    union all

    select 'mailchimp_member_id', members.member_id, contacts.contact_id,
           'email_list_member', min(members.subscribed_at)
    from {{ ref('stg_mailchimp__members') }} as members
    inner join contacts on contacts.email = members.email
    -- one member id per address, whatever the number of lists it is on
    group by members.member_id, contacts.contact_id

    union all

    select 'user_id', user_id, contact_id, 'identify_traits_email', linked_at
    from users

    union all

    select 'anonymous_id', anonymous_id, contact_id, 'event_with_user_id', linked_at
    from anonymous

),

final as (

    select
        identifier_type || ':' || identifier as identity_link_id,
        *
    from unioned

)

select * from final
