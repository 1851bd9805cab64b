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
        cast(numberofemployees as integer) as employee_count,
        upper(country) as country_code,
        {{ to_utc('createdate') }} as created_at,
        {{ to_utc('hs_lastmodifieddate') }} as updated_at

    from source
    where not coalesce(archived, false)

)

select * from renamed
