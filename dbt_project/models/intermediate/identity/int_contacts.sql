{#- The CRM's contacts as one row per current record: a record merged into another
    (listed in the survivor's hs_merged_object_ids) is left out, even when an earlier
    night loaded it, and int_contact_merges maps its id to the survivor. -#}
with

contacts as (

    select * from {{ ref('stg_hubspot__contacts') }}
    where created_at < {{ as_of() }}

),

merges as (

    select * from {{ ref('int_contact_merges') }}

),

final as (

    select contacts.*
    from contacts
    left join merges
        on merges.merged_contact_id = contacts.contact_id
        and merges.contact_id <> contacts.contact_id
    where merges.merged_contact_id is null

)

select * from final
