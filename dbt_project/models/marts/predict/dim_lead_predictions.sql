{#- The learned lead score beside the rules score, per prospect (a contact with no
    order yet), with the features that raised its probability most. -#}
with

predictions as (

    {{ predict_source('lead_predictions') }}

),

contacts as (

    select * from {{ ref('dim_contacts') }}

),

final as (

    select
        predictions.contact_id,
        predictions.night as predicted_for_night,
        contacts.lifecycle_stage,
        contacts.lead_score as rules_lead_score,
        contacts.lead_grade as rules_lead_grade,
        contacts.lead_score_reasons as rules_lead_score_reasons,
        predictions.conversion_probability,
        predictions.predictive_lead_score,
        predictions.top_features as predictive_top_features,
        predictions.prediction_status,
        predictions.status_reason
    from predictions
    inner join contacts on contacts.contact_id = predictions.contact_id
    where predictions.night = cast({{ as_of() }} as date)

)

select * from final
