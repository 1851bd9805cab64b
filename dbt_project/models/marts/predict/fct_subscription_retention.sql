{#- Contractual retention per subscription cohort (start month, and `all`) and renewal
    period: the observed retention table next to the sBG projection of survival and
    retention rate, past the observed periods too. -#}
with

retention as (

    {{ predict_source('subscription_retention') }}

),

final as (

    select
        cohort || ':' || cast(period as {{ dbt.type_string() }}) as cohort_period_id,
        cohort,
        period,
        cohort_subscribers,
        observable_subscribers,
        retained_subscribers,
        observed_survival,
        projected_survival,
        projected_retention_rate,
        cohort_subscribers * projected_survival as projected_retained_subscribers,
        is_projection,
        prediction_status,
        status_reason,
        night as predicted_for_night
    from retention
    where night = cast({{ as_of() }} as date)

)

select * from final
