{#- One row per list member (an address on two lists is two members). Mailchimp sends
    timestamp_signup / timestamp_opt as '' when it does not know them (every imported
    member) and some lists omit them: they arrive as text, are parsed here, and the raw
    text is kept beside the parsed time. -#}
with

source as (

    select * from {{ source('mailchimp', 'members') }}

),

renamed as (

    select
        ---------- ids
        list_id || ':' || id as list_member_id,
        id as member_id,
        list_id,
        unique_email_id,

        ---------- person
        {{ normalize_email('email_address') }} as email,
        first_name,
        last_name,

        ---------- subscription
        status as email_status,
        {{ parse_timestamp('timestamp_signup') }} as signup_at,
        timestamp_signup as timestamp_signup_raw,
        {{ parse_timestamp('timestamp_opt') }} as opted_in_at,
        timestamp_opt as timestamp_opt_raw,
        -- confirmed opt-in, else the sign-up time (imported members only have the first)
        coalesce(
            {{ parse_timestamp('timestamp_opt') }}, {{ parse_timestamp('timestamp_signup') }}
        ) as subscribed_at,

        ---------- timestamps
        {{ to_utc('last_changed') }} as last_changed_at

    from source
    where {{ not_erased('email', 'email_address') }}

)

select * from renamed
