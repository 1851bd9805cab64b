{#- Every CRM contact id, the surviving contact it now belongs to and how: itself, or a
    survivor whose hs_merged_object_ids lists it (HubSpot keeps the primary record of a
    merge). Deals, emails and events of a merged-away record follow its survivor. -#}
with

contacts as (

    select contact_id, merged_object_ids
    from {{ ref('stg_hubspot__contacts') }}
    where created_at < {{ as_of() }}

),

listed as (

    select
        contact_id,
        trim(unnest(string_to_array(merged_object_ids, ';'))) as merged_contact_id
    from contacts
    where merged_object_ids is not null

),

unioned as (

    select contact_id as merged_contact_id, contact_id, 'self' as resolved_by from contacts

    union all

    select merged_contact_id, contact_id, 'hs_merged_object_ids'
    from listed
    where merged_contact_id <> '' and merged_contact_id <> contact_id

),

{#- a merged-away id always resolves to its survivor, never to itself -#}
ranked as (

    select
        *,
        row_number() over (
            partition by merged_contact_id
            order by case when resolved_by = 'self' then 1 else 0 end, contact_id
        ) as rank_n
    from unioned

),

final as (

    select merged_contact_id, contact_id, resolved_by
    from ranked
    where rank_n = 1

)

select * from final
