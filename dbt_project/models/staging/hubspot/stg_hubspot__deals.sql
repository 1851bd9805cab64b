with

source as (

    select * from {{ source('hubspot', 'deals') }}

),

renamed as (

    select
        id as deal_id,
        -- a deal keeps its amount when its contact is erased, not the link
        case when {{ not_erased('contact_id', 'contact_id') }} then contact_id end as contact_id,
        dealname as deal_name,
        dealstage as deal_stage,
        pipeline as deal_pipeline,
        {{ parse_text_as('amount', 'number') }} as amount_usd,
        amount as amount_raw,
        dealstage = 'closedwon' as is_won,
        dealstage in ('closedwon', 'closedlost') as is_closed,
        {{ to_utc('createdate') }} as created_at,
        {{ parse_timestamp('closedate') }} as closed_at,
        {{ to_utc('hs_lastmodifieddate') }} as updated_at

    from source
    where not coalesce(archived, false)

)

select * from renamed
