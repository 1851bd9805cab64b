with

source as (

    select * from {{ source('hubspot', 'companies') }}

),

renamed as (

    select
        id as company_id,
        name as company_name,
        lower(domain) as company_domain,
        industry,
        {{ parse_text_as('numberofemployees', 'integer') }} as employee_count,
        numberofemployees as numberofemployees_raw,
        upper(country) as country_code,
        {{ parse_timestamp('createdate') }} as created_at,
        {{ to_utc('hs_lastmodifieddate') }} as updated_at

    from source
    where not coalesce(archived, false)

)

select * from renamed
