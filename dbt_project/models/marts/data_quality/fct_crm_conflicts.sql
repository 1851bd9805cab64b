{#- Contacts where the CRM contradicts the evidence, for marketing and sales ops: one
    row per contact and conflict, with the reason in words and the ids of the evidence.
    - crm_customer_without_purchase: the CRM says customer, no order or won deal;
    - purchase_but_crm_behind: bought (an order or a won deal) but the CRM's
      lifecyclestage is before customer;
    - crm_stage_without_evidence: a CRM stage date the stage's evidence contradicts
      (seed stage_evidence: no deal for SQL, the score never crossed for MQL, ...);
    - stale_stage: the CRM's lifecyclestage is behind the stage the evidence shows;
    - crm_date_late: a CRM stage date more than a day after the evidence;
    - duplicate_contact: another current contact has the same phone, or the same name
      at the same company where one has no phone (colleagues can share a name; not
      merged in the CRM). -#}
with

contacts as (

    select * from {{ ref('int_contacts') }}

),

stages as (

    select * from {{ ref('lifecycle_stages') }}

),

{#- the order of each HubSpot lifecyclestage value: its first forward stage -#}
hubspot_order as (

    select hubspot_stage, min(stage_order) as stage_order
    from stages
    where stage_kind = 'forward' and hubspot_stage is not null
    group by 1

),

entries as (

    select * from {{ ref('int_lifecycle_stage_entries') }}

),

orders as (

    select
        contact_id,
        count(*) as orders_count,
        min(ordered_at) as first_ordered_at,
        {{ dbt.listagg('order_id', "';'", 'order by ordered_at, order_id') }} as order_ids
    from {{ ref('int_orders_numbered') }}
    group by 1

),

current_stage as (

    select contact_id, forward_stage from {{ ref('int_lifecycle_stage_timeline') }}
    where valid_to is null

),

evidence_kinds as (

    select stage, {{ dbt.listagg('evidence_kind', "', '", 'order by precedence, evidence_kind') }}
        as kinds
    from {{ ref('stage_evidence') }}
    where evidence_kind <> 'crm_date'
    group by 1

),

compared as (

    select
        contacts.contact_id,
        contacts.hubspot_lifecycle_stage,
        crm_order.stage_order as crm_stage_order,
        current_stage.forward_stage,
        model_order.stage_order as model_stage_order,
        forward_entry.entered_at as forward_entered_at,
        forward_entry.evidence as forward_evidence,
        forward_entry.evidence_id as forward_evidence_id,
        orders.orders_count,
        orders.first_ordered_at,
        orders.order_ids
    from contacts
    left join hubspot_order as crm_order
        on crm_order.hubspot_stage = contacts.hubspot_lifecycle_stage
    left join current_stage on current_stage.contact_id = contacts.contact_id
    left join stages as model_stage on model_stage.stage = current_stage.forward_stage
    left join hubspot_order as model_order on model_order.hubspot_stage = model_stage.hubspot_stage
    left join entries as forward_entry
        on forward_entry.contact_id = contacts.contact_id
        and forward_entry.stage = current_stage.forward_stage
    left join orders on orders.contact_id = contacts.contact_id

),

customer_stage as (

    select stage_order from hubspot_order where hubspot_stage = 'customer'

),

conflicts as (

    select
        entries.contact_id,
        case when entries.stage = 'customer' then 'crm_customer_without_purchase'
            else 'crm_stage_without_evidence' end as conflict_type,
        entries.stage,
        'CRM says ' || entries.stage || ' since '
            || cast(cast(entries.crm_entered_at as date) as {{ dbt.type_string() }})
            || ', but there is no ' || coalesce(evidence_kinds.kinds, 'other evidence')
            as reason,
        entries.stage as crm_value,
        cast(null as {{ dbt.type_string() }}) as evidence_value,
        entries.contact_id || ':crm_date:' || entries.stage as evidence_ids
    from entries
    left join evidence_kinds on evidence_kinds.stage = entries.stage
    where entries.crm_date_status = 'contradicted'

    union all

    select
        compared.contact_id,
        'crm_customer_without_purchase',
        'customer',
        'CRM lifecyclestage is customer, but there is no order or won deal',
        compared.hubspot_lifecycle_stage,
        cast(null as {{ dbt.type_string() }}),
        compared.contact_id || ':lifecyclestage'
    from compared
    where compared.hubspot_lifecycle_stage = 'customer' and compared.orders_count is null
      and not exists (
          select 1 from entries
          where entries.contact_id = compared.contact_id and entries.stage = 'customer'
            and entries.crm_date_status = 'contradicted'
      )

    union all

    select
        compared.contact_id,
        'purchase_but_crm_behind',
        'customer',
        'Bought (' || cast(compared.orders_count as {{ dbt.type_string() }})
            || ' orders, first on '
            || cast(cast(compared.first_ordered_at as date) as {{ dbt.type_string() }})
            || ') but CRM says ' || coalesce(compared.hubspot_lifecycle_stage, 'nothing'),
        compared.hubspot_lifecycle_stage,
        compared.forward_stage,
        compared.order_ids
    from compared
    cross join customer_stage
    where compared.orders_count > 0
      and coalesce(compared.crm_stage_order, -1) < customer_stage.stage_order

    union all

    select
        compared.contact_id,
        'stale_stage',
        compared.forward_stage,
        'CRM says ' || coalesce(compared.hubspot_lifecycle_stage, 'nothing')
            || ' but the evidence shows ' || compared.forward_stage || ' since '
            || cast(cast(compared.forward_entered_at as date) as {{ dbt.type_string() }})
            || ' (' || compared.forward_evidence || ')',
        compared.hubspot_lifecycle_stage,
        compared.forward_stage,
        compared.forward_evidence_id
    from compared
    cross join customer_stage
    where coalesce(compared.crm_stage_order, -1) < compared.model_stage_order
      and not (
          coalesce(compared.orders_count, 0) > 0
          and coalesce(compared.crm_stage_order, -1) < customer_stage.stage_order
      )

    union all

    select
        entries.contact_id,
        'crm_date_late',
        entries.stage,
        'CRM set ' || entries.stage || ' '
            || cast(round(cast({{ days_between('entries.entered_at', 'entries.crm_entered_at') }}
                as numeric), 1) as {{ dbt.type_string() }})
            || ' days after the evidence (' || entries.evidence || ')',
        cast(cast(entries.crm_entered_at as date) as {{ dbt.type_string() }}),
        cast(cast(entries.entered_at as date) as {{ dbt.type_string() }}),
        entries.evidence_id
    from entries
    where entries.crm_date_status = 'later_than_evidence'
      and {{ days_between('entries.entered_at', 'entries.crm_entered_at') }} > 1

),

people as (

    select
        contact_id,
        nullif(regexp_replace(coalesce(phone, ''), '[^0-9]', '', 'g'), '') as phone_digits,
        lower(first_name) || '|' || lower(last_name) || '|' || coalesce(company_id, '')
            as name_key
    from contacts

),

{#- two equality joins, not one join on "phone or name": an OR in the join condition
    cannot be hashed, so DuckDB compares every pair of contacts (quadratic) -#}
same_person as (

    select a.contact_id, b.contact_id as other_contact_id
    from people as a
    inner join people as b
        on a.phone_digits = b.phone_digits and a.contact_id <> b.contact_id

    union

    select a.contact_id, b.contact_id as other_contact_id
    from people as a
    inner join people as b
        on a.name_key = b.name_key and a.contact_id <> b.contact_id
    where a.phone_digits is null or b.phone_digits is null

),

duplicates as (

    select
        contact_id,
        'duplicate_contact' as conflict_type,
        cast(null as {{ dbt.type_string() }}) as stage,
        'Same phone (or same name at the same company) as '
            || {{ dbt.listagg('other_contact_id', "', '", 'order by other_contact_id') }}
            || ' (not merged in the CRM)' as reason,
        cast(null as {{ dbt.type_string() }}) as crm_value,
        cast(null as {{ dbt.type_string() }}) as evidence_value,
        {{ dbt.listagg('other_contact_id', "';'", 'order by other_contact_id') }}
            as evidence_ids
    from same_person
    group by 1

),

unioned as (

    select * from conflicts
    union all
    select * from duplicates

),

final as (

    select
        contact_id || ':' || conflict_type || ':' || coalesce(stage, '') as crm_conflict_id,
        contact_id,
        conflict_type,
        stage,
        reason,
        crm_value,
        evidence_value,
        evidence_ids,
        {{ as_of() }} as detected_for
    from unioned

)

select * from final
