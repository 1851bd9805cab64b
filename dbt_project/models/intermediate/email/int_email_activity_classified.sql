{#- Email actions before the night, with the contact they belong to and machines told
    apart from people. Mailchimp has no machine flag, so:
    - an open or click from a machine range (seed email_machine_ip_ranges: privacy
      proxies, mail-security scanners) is a machine's;
    - an open from a range shared with VPN users is a machine's only when it came within
      var('machine_open_shared_range_max_hours') of the send (proxies fetch minutes to
      hours after delivery);
    - a click within var('machine_click_max_seconds') of the send is a link scanner's;
    - an action without an IP: a machine's if within var('machine_open_max_seconds').
    machine_reason says which rule fired. -#}
with

activity as (

    select * from {{ ref('stg_mailchimp__email_activity') }}
    where activity_at < {{ as_of() }}

),

campaigns as (

    select campaign_id, sent_at from {{ ref('stg_mailchimp__campaigns') }}

),

emails as (

    select email, min(contact_id) as contact_id
    from {{ ref('int_contact_emails') }}
    group by 1

),

ranges as (

    select * from {{ ref('email_machine_ip_ranges') }}

),

in_range as (

    select
        activity.email_activity_id,
        max(case when not ranges.is_shared then 1 else 0 end) as in_machine_range,
        max(case when ranges.is_shared then 1 else 0 end) as in_shared_range
    from activity
    inner join ranges on activity.ip_address like ranges.ip_prefix || '%'
    group by 1

),

timed as (

    select
        activity.*,
        campaigns.sent_at,
        {{ dbt.datediff('campaigns.sent_at', 'activity.activity_at', 'second') }}
            as seconds_after_send,
        coalesce(in_range.in_machine_range, 0) = 1 as is_from_machine_range,
        coalesce(in_range.in_shared_range, 0) = 1 as is_from_shared_range
    from activity
    left join campaigns on campaigns.campaign_id = activity.campaign_id
    left join in_range on in_range.email_activity_id = activity.email_activity_id

),

classified as (

    select
        timed.email_activity_id,
        emails.contact_id,
        timed.campaign_id,
        timed.member_id,
        timed.email,
        timed.activity_type,
        timed.activity_at,
        timed.sent_at,
        timed.ip_address,
        case
            when timed.activity_type not in ('open', 'click') then null
            when timed.is_from_machine_range then 'machine_ip_range'
            when timed.activity_type = 'open' and timed.is_from_shared_range
                and timed.seconds_after_send <= {{ var('machine_open_shared_range_max_hours') }} * 3600
                then 'shared_range_soon_after_send'
            when timed.activity_type = 'click'
                and timed.seconds_after_send <= {{ var('machine_click_max_seconds') }}
                then 'click_at_delivery'
            when timed.ip_address is null and timed.activity_type = 'open'
                and timed.seconds_after_send <= {{ var('machine_open_max_seconds') }}
                then 'open_at_delivery'
        end as machine_reason
    from timed
    left join emails on emails.email = timed.email

),

final as (

    select
        *,
        coalesce(activity_type = 'open' and machine_reason is not null, false)
            as is_machine_open,
        coalesce(activity_type = 'click' and machine_reason is not null, false)
            as is_machine_click
    from classified

)

select * from final
