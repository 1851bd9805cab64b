{#- Leads not yet marketing-qualified (stage lead, score under var('mql_score_threshold')),
    for nurture email and content. -#}
with

contacts as (

    select * from {{ ref('dim_contacts') }}

),

final as (

    select
        {{ audience_columns() }},
        contacts.lead_grade,
        contacts.engagement_segment
    from contacts
    where contacts.lifecycle_stage = 'lead'
      and not contacts.is_mql_by_score
      and {{ has_channel_consent('contacts.contact_id') }}

)

select * from final
