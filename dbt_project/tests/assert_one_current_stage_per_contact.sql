{#- Every contact has exactly one current stage period and it matches dim_contacts. -#}
select contacts.contact_id
from {{ ref('dim_contacts') }} as contacts
left join {{ ref('fct_lifecycle_stage_history') }} as history
    on history.contact_id = contacts.contact_id and history.is_current
group by contacts.contact_id, contacts.lifecycle_stage
having count(history.contact_id) <> 1 or max(history.stage) <> contacts.lifecycle_stage
