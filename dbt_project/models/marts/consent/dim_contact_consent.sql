{#- Consent per contact and purpose (email_marketing, ad_user_data, ad_personalization),
    derived once, from the sources the seed consent_sources names, and read by everything
    else (dim_contacts' flags, every audience, the activation engine, the quality checks).

    Evidence: one record per source record that speaks to a purpose (a Mailchimp member's
    status, a Mailchimp marketing permission matched by its text on any list, a HubSpot
    property and the time its value was set, a Segment consent event). Its value maps to
    granted / withdrawn through the seed's granted_values and withdrawn_values (anything
    else present is not_granted). Its time: a grant dates from the opt-in (Mailchimp) or
    the change (HubSpot history, the event); a withdrawal or refusal from the record's
    last change, so a withdrawal is never dated earlier than it happened and a grant
    never later.

    Decision (seed on_conflict): most_recent_withdrawal_wins takes the most recent
    explicit grant or withdrawal, a withdrawal winning a tie, so a grant older than a
    withdrawal never decides; any_withdrawal_wins lets any withdrawal decide. Without a
    grant or a withdrawal the latest not_granted record decides; with no record at all
    the purpose is unknown. is_granted is never null: only granted is true. -#}
with

rules as (

    select
        purpose,
        channel,
        source_kind,
        source_key,
        lower(trim(source_key)) as source_key_normalized,
        event_name,
        '|' || replace(replace(lower(granted_values), ' |', '|'), '| ', '|') || '|' as granted_list,
        '|' || replace(replace(lower(coalesce(withdrawn_values, '')), ' |', '|'), '| ', '|') || '|'
            as withdrawn_list,
        on_conflict
    from {{ ref('consent_sources') }}

),

contacts as (

    select contact_id, email from {{ ref('int_contacts') }}
    where created_at < {{ as_of() }}

),

members as (

    select members.*, contacts.contact_id
    from {{ ref('stg_mailchimp__members') }} as members
    inner join contacts on contacts.email = members.email

),

---------- evidence, one CTE per source kind: value, time if granted, time otherwise

mailchimp_status as (

    select
        members.contact_id,
        rules.purpose,
        rules.source_kind,
        'mailchimp:' || members.list_member_id as record_id,
        lower(members.email_status) as record_value,
        members.subscribed_at as granted_time,
        members.last_changed_at as changed_time
    from rules
    inner join members on rules.source_kind = 'mailchimp_status'

),

mailchimp_permission as (

    select
        members.contact_id,
        rules.purpose,
        rules.source_kind,
        'mailchimp:' || permissions.member_permission_id as record_id,
        case when permissions.is_enabled then 'true' else 'false' end as record_value,
        members.subscribed_at as granted_time,
        permissions.member_last_changed_at as changed_time
    from rules
    inner join {{ ref('stg_mailchimp__member_permissions') }} as permissions
        on rules.source_kind = 'mailchimp_permission'
        and permissions.permission_text_normalized = rules.source_key_normalized
    inner join members on members.list_member_id = permissions.list_member_id

),

hubspot_property as (

    select
        contacts.contact_id,
        rules.purpose,
        rules.source_kind,
        'hubspot:' || properties.contact_consent_id as record_id,
        properties.property_value as record_value,
        properties.changed_at as granted_time,
        properties.changed_at as changed_time
    from rules
    inner join {{ ref('stg_hubspot__contact_consent') }} as properties
        on rules.source_kind = 'hubspot_property'
        and properties.property = rules.source_key
    inner join contacts on contacts.contact_id = properties.contact_id
    where properties.property_value is not null

),

user_contacts as (

    select distinct identifier as user_id, contact_id
    from {{ ref('int_identities_stitched') }}
    where identifier_type = 'user_id'

),

segment_consent_events as (

    select event_id, user_id, event_name, event_at, consent_preferences
    from {{ ref('stg_segment__events') }}
    where consent_preferences is not null
      and user_id is not null
      and event_at < {{ as_of() }}

),

segment_event as (

    select
        user_contacts.contact_id,
        rules.purpose,
        rules.source_kind,
        'segment:' || events.event_id as record_id,
        lower({{ json_text('events.consent_preferences', 'rules.source_key') }}) as record_value,
        events.event_at as granted_time,
        events.event_at as changed_time
    from rules
    inner join segment_consent_events as events
        on rules.source_kind = 'segment_event'
        and events.event_name = rules.event_name
    inner join user_contacts on user_contacts.user_id = events.user_id

),

evidence as (

    select * from mailchimp_status
    union all
    select * from mailchimp_permission
    union all
    select * from hubspot_property
    union all
    select * from segment_event

),

classified as (

    select
        evidence.*,
        rules.on_conflict,
        case
            when position('|' || evidence.record_value || '|' in rules.granted_list) > 0
                then 'granted'
            when position('|' || evidence.record_value || '|' in rules.withdrawn_list) > 0
                then 'withdrawn'
            else 'not_granted'
        end as evidence_status
    from evidence
    inner join rules
        on rules.purpose = evidence.purpose
        and rules.source_kind = evidence.source_kind
    where evidence.record_value is not null

),

dated as (

    select
        *,
        case when evidence_status = 'granted' then granted_time else changed_time end
            as recorded_at
    from classified

),

ranked as (

    select
        *,
        row_number() over (
            partition by contact_id, purpose
            order by
                case when evidence_status in ('granted', 'withdrawn') then 0 else 1 end,
                case
                    when on_conflict = 'any_withdrawal_wins' and evidence_status = 'withdrawn'
                        then 0
                    else 1
                end,
                recorded_at desc nulls last,
                case when evidence_status = 'withdrawn' then 0 else 1 end,
                record_id
        ) as decision_rank,
        max(case when evidence_status = 'withdrawn' then recorded_at end)
            over (partition by contact_id, purpose) as last_withdrawn_at,
        count(*) over (partition by contact_id, purpose) as evidence_records
    from dated
    -- a record made after the night being built does not count for it
    where recorded_at is null or recorded_at < {{ as_of() }}

),

decided as (

    select * from ranked where decision_rank = 1

),

email_member as (

    select
        contact_id,
        email_status,
        row_number() over (
            partition by contact_id order by last_changed_at desc, list_member_id
        ) as recency
    from members

),

email_decision as (

    select contact_id, source_kind, record_value
    from decided
    where purpose = 'email_marketing'

),

purposes as (

    select distinct purpose, channel from rules

),

grid as (

    select contacts.contact_id, purposes.purpose, purposes.channel
    from contacts
    cross join purposes

),

final as (

    select
        grid.contact_id || ':' || grid.purpose as consent_id,
        grid.contact_id,
        grid.purpose,
        grid.channel,
        coalesce(decided.evidence_status = 'granted', false) as is_granted,
        coalesce(decided.evidence_status, 'unknown') as consent_status,
        decided.source_kind as deciding_source,
        decided.record_id as deciding_record_id,
        decided.record_value as deciding_value,
        decided.recorded_at as decided_at,
        decided.last_withdrawn_at,
        coalesce(decided.evidence_records, 0) as evidence_records,
        -- Mailchimp's status for the address: the deciding member when Mailchimp status
        -- decided email consent, else the member changed last, on any list
        coalesce(
            case
                when email_decision.source_kind = 'mailchimp_status'
                    then email_decision.record_value
            end,
            email_member.email_status,
            'not_subscribed'
        ) as email_status
    from grid
    left join decided
        on decided.contact_id = grid.contact_id
        and decided.purpose = grid.purpose
    left join email_decision on email_decision.contact_id = grid.contact_id
    left join email_member
        on email_member.contact_id = grid.contact_id
        and email_member.recency = 1

)

select * from final
