{#- Web events of people up to the night (bots left out), each with the contact it
    belongs to (null = not linked): by its user id, else by its device's anonymous id. -#}
with

events as (

    select * from {{ ref('int_web_events') }}
    where not is_bot

),

ids as (

    select * from {{ ref('int_identities_stitched') }}

),

final as (

    select
        events.*,
        coalesce(by_user.contact_id, by_anonymous.contact_id) as contact_id,
        case
            when by_user.contact_id is not null then 'user_id'
            when by_anonymous.contact_id is not null then 'anonymous_id'
        end as attributed_by
    from events
    left join ids as by_user
        on by_user.identifier_type = 'user_id'
        and by_user.identifier = events.user_id
    left join ids as by_anonymous
        on by_anonymous.identifier_type = 'anonymous_id'
        and by_anonymous.identifier = events.anonymous_id

)

select * from final
