{#- What the model knows about each contact, to write back to HubSpot contact properties:
    lifecycle stage (HubSpot's current stage alongside, for the forward-only rule), lead
    score, grade and reason codes. Not a marketing audience: no channel consent applies. -#}
with

contacts as (

    select * from {{ ref('dim_contacts') }}

),

final as (

    select
        contact_id,
        email,
        lifecycle_stage,
        hubspot_lifecycle_stage,
        lead_score,
        lead_grade,
        lead_score_reasons
    from contacts

)

select * from final
