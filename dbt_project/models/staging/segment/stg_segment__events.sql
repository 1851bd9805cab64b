with

source as (

    select * from {{ source('segment', 'events') }}

),

renamed as (

    select
        ---------- ids
        message_id as event_id,
        {{ clean_text('anonymous_id') }} as anonymous_id,
        {{ clean_text('user_id') }} as user_id,

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
        {{ clean_text('order_id') }} as order_id,
        {{ clean_text('form_id') }} as form_id,
        {{ clean_text('content_id') }} as content_id,
        {{ clean_text('referral_code') }} as referral_code,
        {{ clean_text('traits_referral_code') }} as traits_referral_code,

        ---------- device and email click-throughs (Mailchimp's mc_cid / mc_eid)
        {{ clean_text('user_agent') }} as user_agent,
        {{ clean_text('ip') }} as ip_address,
        {{ url_parameter('page_url', 'mc_eid') }} as mc_eid,
        {{ url_parameter('page_url', 'mc_cid') }} as mc_cid,
        -- Segment's consent object (context.consent.categoryPreferences) as JSON text
        consent_preferences,

        ---------- attribution
        lower({{ clean_text('utm_source') }}) as utm_source,
        lower({{ clean_text('utm_medium') }}) as utm_medium,
        {{ clean_text('utm_campaign') }} as utm_campaign,

        ---------- timestamps
        {{ to_utc('timestamp') }} as event_at,
        {{ to_utc('received_at') }} as received_at

    from source
    -- an erased person's events are purged from raw each night (lifecycle.erasure);
    -- this also drops an identify that would link them again before the next purge
    where {{ not_erased('email', 'traits_email') }}

)

select * from renamed
