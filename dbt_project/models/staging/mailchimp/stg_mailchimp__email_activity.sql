with

source as (

    select * from {{ source('mailchimp', 'email_activity') }}

),

renamed as (

    select
        {{ dbt.hash("campaign_id || '|' || email_id || '|' || action || '|' || cast(timestamp as varchar)") }}
            as email_activity_id,
        campaign_id,
        email_id as member_id,
        {{ normalize_email('email_address') }} as email,
        action as activity_type,
        bounce_type,
        url as clicked_url,
        {{ clean_text('ip') }} as ip_address,
        {{ to_utc('timestamp') }} as activity_at

    from source
    where {{ not_erased('email', 'email_address') }}

)

select * from renamed
