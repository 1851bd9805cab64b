with

source as (

    select * from {{ source('mailchimp', 'members') }}

),

renamed as (

    select
        id as member_id,
        {{ normalize_email('email_address') }} as email,
        status as email_status,
        first_name,
        last_name,
        has_ad_consent,
        has_email_permission,
        list_id,
        {{ to_utc('timestamp_signup') }} as subscribed_at,
        {{ to_utc('timestamp_opt') }} as opted_in_at,
        unique_email_id,
        {{ to_utc('last_changed') }} as last_changed_at

    from source

)

select * from renamed
