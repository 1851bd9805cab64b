{#- Every email address of a current contact: the CRM email and the addresses HubSpot
    keeps in hs_additional_emails (an old address after a change, a merged duplicate's
    address). An address two contacts claim is left out: it cannot say who is who. -#}
with

contacts as (

    select contact_id, email, additional_emails from {{ ref('int_contacts') }}

),

emails as (

    select contact_id, email, 'crm_email' as email_kind
    from contacts
    where email is not null

    union all

    select contact_id, trim(unnest(string_to_array(additional_emails, ';'))), 'additional_email'
    from contacts
    where additional_emails is not null

),

claimed as (

    select email, count(distinct contact_id) as contacts_n
    from emails
    where email <> ''
    group by 1

),

final as (

    select distinct emails.contact_id, emails.email, emails.email_kind
    from emails
    inner join claimed on claimed.email = emails.email
    where claimed.contacts_n = 1

)

select * from final
