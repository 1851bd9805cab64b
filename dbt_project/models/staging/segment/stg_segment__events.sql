with

source as (

    select * from {{ source('segment', 'events') }}

),

renamed as (

    select
        ---------- ids
        message_id as event_id,
        anonymous_id,
        user_id,

        ---------- what happened
        type as event_type,
        case
            when type = 'page' then 'Page Viewed'
            when type = 'identify' then 'Identified'
            else event
        end as event_name,
        page_path,
        page_url,
        page_referrer,
        {{ normalize_email('traits_email') }} as email,
        revenue as revenue_usd,
        order_id,

        ---------- attribution
        lower(utm_source) as utm_source,
        lower(utm_medium) as utm_medium,
        utm_campaign,

        ---------- timestamps
        {{ to_utc('timestamp') }} as event_at,
        {{ to_utc('received_at') }} as received_at

    from source

)

select * from renamed
