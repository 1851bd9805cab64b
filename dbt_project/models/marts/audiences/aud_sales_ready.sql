{#- Marketing- and sales-qualified contacts: the audience for retargeting ads that support
    the sales conversation. Ads only: every ad purpose granted in
    marts.dim_contact_consent. -#}
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
      and {{ has_channel_consent('contacts.contact_id', ['ads']) }}
      and contacts.email is not null

)

select * from final
