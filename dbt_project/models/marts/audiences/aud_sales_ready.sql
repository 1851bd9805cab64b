{#- Marketing- and sales-qualified contacts: the audience for retargeting ads that support
    the sales conversation. Until the activation engine applies consent per destination
    it lists only contacts who agreed to ad targeting. -#}
with

contacts as (

    select * from {{ ref('dim_contacts') }}

),

final as (

    select
        {{ audience_columns() }},
        contacts.lead_grade,
        contacts.lead_score_reasons
    from contacts
    where contacts.lifecycle_stage in ('mql', 'sql')
      and contacts.has_ad_consent
      and contacts.email is not null

)

select * from final
