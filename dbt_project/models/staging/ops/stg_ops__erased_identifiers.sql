{#- Every hash that identifies an erased person, one row per (kind, hash): kind email
    (sha256 of the trimmed, lowercased address), contact_id (sha256 of the HubSpot id),
    user / anon (sha256 of a Segment userId / anonymousId). Staging models leave out
    the rows these match (macro not_erased). -#}
with

erasures as (

    select * from {{ source('ops', 'erasures') }}

),

identifiers as (

    select * from {{ source('ops', 'erasure_identifiers') }}

),

unioned as (

    select 'email' as identifier_kind, email_sha256 as identifier_sha256
    from erasures where email_sha256 is not null
    union
    select 'contact_id', contact_id_sha256
    from erasures where contact_id_sha256 is not null
    union
    select identifier_kind, identifier_sha256
    from identifiers where identifier_sha256 is not null

)

select * from unioned
