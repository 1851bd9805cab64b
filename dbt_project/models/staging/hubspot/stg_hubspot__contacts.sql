{#- One row per CRM contact. HubSpot leaves an unset property out or sends null, and a
    cleared one can be '': optional dates arrive as text (raw_hubspot.contacts keeps it
    as sent) and are parsed here, '' and unparseable values becoming null. -#}
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
        {{ parse_timestamp('hs_lifecyclestage_subscriber_date') }} as subscriber_at,
        {{ parse_timestamp('hs_lifecyclestage_lead_date') }} as lead_at,
        {{ parse_timestamp('hs_lifecyclestage_marketingqualifiedlead_date') }} as mql_at,
        {{ parse_timestamp('hs_lifecyclestage_salesqualifiedlead_date') }} as sql_at,
        {{ parse_timestamp('hs_lifecyclestage_opportunity_date') }} as opportunity_at,
        {{ parse_timestamp('hs_lifecyclestage_customer_date') }} as customer_at,
        {{ parse_timestamp('hs_lifecyclestage_evangelist_date') }} as evangelist_at,

        ---------- merges (';'-joined lists, as HubSpot serves multi-value properties)
        {{ clean_text('hs_merged_object_ids') }} as merged_object_ids,
        lower({{ clean_text('hs_additional_emails') }}) as additional_emails,

        ---------- timestamps
        {{ to_utc('createdate') }} as created_at,
        {{ to_utc('lastmodifieddate') }} as updated_at

    from source
    where not coalesce(archived, false)
      -- erased people (ops.erasures) leave every model
      and {{ not_erased('contact_id', 'id') }}
      and {{ not_erased('email', 'email') }}

)

select * from renamed
