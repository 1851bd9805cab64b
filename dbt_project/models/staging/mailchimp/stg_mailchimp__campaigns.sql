with

source as (

    select * from {{ source('mailchimp', 'campaigns') }}

),

renamed as (

    select
        id as campaign_id,
        subject_line,
        status as campaign_status,
        list_id,
        {{ to_utc('send_time') }} as sent_at

    from source

)

select * from renamed
