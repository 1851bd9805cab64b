{#- Sessions with the contact they belong to (through the device's anonymous id, else a
    user id seen in the session) and their first- and last-touch marketing channel
    (seed utm_channels; no UTM at all is direct). Rebuilt each night, so a device
    stitched today gets its old sessions attributed. -#}
with

sessions as (

    select * from {{ ref('int_sessions') }}

),

ids as (

    select * from {{ ref('int_identities_stitched') }}

),

channels as (

    select * from {{ ref('utm_channels') }}

),

final as (

    select
        sessions.*,
        coalesce(by_anonymous.contact_id, by_user.contact_id) as contact_id,
        case
            when first_channel.channel is not null then first_channel.channel
            when sessions.first_utm_source is not null or sessions.first_utm_medium is not null
                then 'other'
            else 'direct'
        end as first_touch_channel,
        case
            when last_channel.channel is not null then last_channel.channel
            when sessions.last_utm_source is not null or sessions.last_utm_medium is not null
                then 'other'
            else 'direct'
        end as last_touch_channel
    from sessions
    left join ids as by_anonymous
        on by_anonymous.identifier_type = 'anonymous_id'
        and by_anonymous.identifier = sessions.anonymous_id
    left join ids as by_user
        on by_user.identifier_type = 'user_id'
        and by_user.identifier = sessions.user_id
    left join channels as first_channel on first_channel.utm_medium = sessions.first_utm_medium
    left join channels as last_channel on last_channel.utm_medium = sessions.last_utm_medium

)

select * from final
