{#- Marketing- and sales-qualified contacts who agreed to ad targeting: the audience for
    retargeting ads that support the sales conversation. -#}
with

contacts as (

    select * from {{ ref('dim_contacts') }}

),

final as (

    select
        contact_id,
        email,
        phone,
        first_name,
        last_name,
        country_code,
        lifecycle_stage,
        lead_score
    from contacts
    where lifecycle_stage in ('mql', 'sql')
      and has_ad_consent
      and email is not null

)

select * from final
