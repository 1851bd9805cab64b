with

source as (

    select * from {{ source('hubspot', 'contacts') }}

),

renamed as (

    select
        ---------- ids
        id as contact_id,
        associatedcompanyid as company_id,

        ---------- person
        {{ normalize_email('email') }} as email,
        firstname as first_name,
        lastname as last_name,
        phone,
        upper(country) as country_code,
        jobtitle as job_title,

        ---------- lifecycle as the CRM records it
        lifecyclestage as hubspot_lifecycle_stage,
        {{ to_utc('hs_lifecyclestage_subscriber_date') }} as subscriber_at,
        {{ to_utc('hs_lifecyclestage_lead_date') }} as lead_at,
        {{ to_utc('hs_lifecyclestage_marketingqualifiedlead_date') }} as mql_at,
        {{ to_utc('hs_lifecyclestage_salesqualifiedlead_date') }} as sql_at,
        {{ to_utc('hs_lifecyclestage_opportunity_date') }} as opportunity_at,
        {{ to_utc('hs_lifecyclestage_customer_date') }} as customer_at,
        {{ to_utc('hs_lifecyclestage_evangelist_date') }} as evangelist_at,

        ---------- merges (';'-joined lists, as HubSpot serves multi-value properties)
        {{ clean_text('hs_merged_object_ids') }} as merged_object_ids,
        lower({{ clean_text('hs_additional_emails') }}) as additional_emails,

        ---------- timestamps
        {{ to_utc('createdate') }} as created_at,
        {{ to_utc('lastmodifieddate') }} as updated_at

    from source
    where not coalesce(archived, false)

)

select * from renamed
