{#- Every identifier we have seen, mapped to one contact, with how the link was made:
    - email: the CRM email and hs_additional_emails (int_contact_emails);
    - mailchimp_member_id / mailchimp_unique_email_id: the list member with that email
      (the unique email id is what an email click-through carries as mc_eid);
    - user_id: through identify events' traits.email (sign-up, log-in, forms);
    - anonymous_id: through events that carry a linked user id, email click-throughs
      (mc_eid), and identifies with an email but no user id.
    Bot events never link anything. An identifier that would map to two contacts is
    left out, and so is an email identified by two different web users (a shared
    address such as info@): an event is better unattributed than attributed to the
    wrong person, and nothing is guessed. -#}
with

emails as (

    select email, min(contact_id) as contact_id
    from {{ ref('int_contact_emails') }}
    group by 1

),

events as (

    select * from {{ ref('int_web_events') }}
    where not is_bot

),

identifies as (

    select anonymous_id, user_id, email, event_at
    from events
    where event_type = 'identify' and email is not null

),

{#- an address more than one web user identified with is shared: never a link -#}
shared_emails as (

    select email
    from identifies
    where user_id is not null
    group by 1
    having count(distinct user_id) > 1

),

usable_identifies as (

    select identifies.*
    from identifies
    left join shared_emails on shared_emails.email = identifies.email
    where shared_emails.email is null

),

user_links as (

    select
        usable_identifies.user_id,
        emails.contact_id,
        min(usable_identifies.event_at) as linked_at
    from usable_identifies
    inner join emails on emails.email = usable_identifies.email
    where usable_identifies.user_id is not null
    group by 1, 2

),

users as (

    select user_id, min(contact_id) as contact_id, min(linked_at) as linked_at
    from user_links
    group by 1
    having count(distinct contact_id) = 1

),

{#- a member whose address changed has a new member id (the hash of the address); the
    row of its old id may linger from an earlier load: the unique email id stays, and
    its latest member row speaks for it -#}
member_rows as (

    select
        members.member_id,
        members.unique_email_id,
        emails.contact_id,
        coalesce(members.opted_in_at, members.subscribed_at) as linked_at,
        row_number() over (
            partition by coalesce(members.unique_email_id, members.member_id)
            order by members.last_changed_at desc, members.member_id
        ) as latest_n
    from {{ ref('stg_mailchimp__members') }} as members
    inner join emails on emails.email = members.email

),

{#- one member id per address, whatever the number of lists it is on -#}
members as (

    select member_id, contact_id, min(linked_at) as linked_at
    from member_rows
    group by 1, 2

),

latest_members as (

    select * from member_rows where latest_n = 1

),

anonymous_links as (

    select events.anonymous_id, users.contact_id, min(events.event_at) as linked_at,
           'event_with_user_id' as link_method
    from events
    inner join users on users.user_id = events.user_id
    where events.anonymous_id is not null
    group by 1, 2

    union all

    select events.anonymous_id, latest_members.contact_id, min(events.event_at),
           'email_click_through'
    from events
    inner join latest_members on latest_members.unique_email_id = events.mc_eid
    where events.anonymous_id is not null
    group by 1, 2

    union all

    select usable_identifies.anonymous_id, emails.contact_id, min(usable_identifies.event_at),
           'identify_without_user'
    from usable_identifies
    inner join emails on emails.email = usable_identifies.email
    where usable_identifies.user_id is null and usable_identifies.anonymous_id is not null
    group by 1, 2

),

anonymous as (

    select
        anonymous_id,
        min(contact_id) as contact_id,
        min(linked_at) as linked_at,
        min(link_method) as link_method
    from anonymous_links
    group by 1
    having count(distinct contact_id) = 1

),

unioned as (

    select 'email' as identifier_type, email as identifier, contact_id,
           'crm_email' as link_method, cast(null as timestamp) as linked_at
    from emails

    union all

    select 'mailchimp_member_id', member_id, contact_id, 'email_list_member', linked_at
    from members

    union all

    select 'mailchimp_unique_email_id', unique_email_id, contact_id, 'email_list_member',
           linked_at
    from latest_members
    where unique_email_id is not null

    union all

    select 'user_id', user_id, contact_id, 'identify_traits_email', linked_at
    from users

    union all

    select 'anonymous_id', anonymous_id, contact_id, link_method, linked_at
    from anonymous

),

final as (

    select
        identifier_type || ':' || identifier as identity_link_id,
        *
    from unioned

)

select * from final
