{#- Lookalike seed: customers in the top var('lookalike_top_fraction') by historic LTV,
    for ad platforms to find people like the best customers. -#}
with

contacts as (

    select * from {{ ref('dim_contacts') }}

),

ranked as (

    select
        contact_id,
        historic_ltv_usd,
        row_number() over (order by historic_ltv_usd desc, contact_id) as ltv_rank,
        count(*) over () as customers
    from {{ ref('dim_customers') }}

),

final as (

    select
        {{ audience_columns() }},
        ranked.historic_ltv_usd,
        ranked.ltv_rank
    from contacts
    inner join ranked on ranked.contact_id = contacts.contact_id
    where ranked.ltv_rank <= ranked.customers * {{ var('lookalike_top_fraction') }}
      and {{ has_channel_consent('contacts.contact_id') }}

)

select * from final
