{#- The first time a contact entered each forward stage, decided from its evidence
    (int_lifecycle_evidence) by the precedence in seed stage_evidence:
    1. a CRM date whose stage requires_other_evidence counts only when evidence of
       another kind exists for that stage, or when such evidence could not have been
       seen (observable_when = web and the contact has no linked web event); otherwise
       it is contradicted ("CRM says customer, no order or won deal" - see
       marts.fct_crm_conflicts);
    2. the entry is the earliest counted evidence; ties go to the lower precedence
       number, then the evidence id;
    3. the entry keeps that evidence's own kind and id (not the smallest kind name of
       all evidence), and, for reference, what the CRM said.
    Stages never move backwards: the stage machine (int_lifecycle_stage_timeline) takes
    the highest stage entered, so a later behavioural entry of a lower stage changes
    nothing. -#}
with

evidence as (

    select * from {{ ref('int_lifecycle_evidence') }}

),

rules as (

    select * from {{ ref('stage_evidence') }}

),

stages as (

    select * from {{ ref('lifecycle_stages') }}

),

other_evidence as (

    select contact_id, stage, min(occurred_at) as first_other_at
    from evidence
    where evidence_kind <> 'crm_date'
    group by 1, 2

),

seen_on_web as (

    select distinct contact_id from evidence where evidence_kind = 'web_visit'

),

crm as (

    select contact_id, stage, min(occurred_at) as crm_entered_at
    from evidence
    where evidence_kind = 'crm_date'
    group by 1, 2

),

counted as (

    select
        evidence.*,
        rules.precedence
    from evidence
    inner join rules
        on rules.stage = evidence.stage and rules.evidence_kind = evidence.evidence_kind
    left join other_evidence
        on other_evidence.contact_id = evidence.contact_id
        and other_evidence.stage = evidence.stage
    left join seen_on_web on seen_on_web.contact_id = evidence.contact_id
    where not rules.requires_other_evidence
       or other_evidence.contact_id is not null
       or (rules.observable_when = 'web' and seen_on_web.contact_id is null)

),

ranked as (

    select
        *,
        row_number() over (
            partition by contact_id, stage order by occurred_at, precedence, evidence_id
        ) as rank_n
    from counted

),

entries as (

    select * from ranked where rank_n = 1

),

keys as (

    select contact_id, stage from entries
    union
    select contact_id, stage from crm

),

final as (

    select
        keys.contact_id || ':' || keys.stage as stage_entry_id,
        keys.contact_id,
        keys.stage,
        stages.stage_order,
        entries.occurred_at as entered_at,
        entries.evidence_kind as evidence,
        entries.evidence_id,
        crm.crm_entered_at,
        case
            when crm.crm_entered_at is null then 'absent'
            when entries.evidence_kind = 'crm_date' then 'decided'
            when entries.contact_id is null then 'contradicted'
            when crm.crm_entered_at > entries.occurred_at then 'later_than_evidence'
            else 'agrees'
        end as crm_date_status
    from keys
    inner join stages on stages.stage = keys.stage
    left join entries on entries.contact_id = keys.contact_id and entries.stage = keys.stage
    left join crm on crm.contact_id = keys.contact_id and crm.stage = keys.stage

)

select * from final
