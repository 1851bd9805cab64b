{#- Nobody without consent is ever in an audience, by marts.dim_contact_consent: every
    row has email_marketing granted or every ad purpose granted (aud_sales_ready: the
    ad purposes), and the consent columns an audience carries agree with the model.
    Written without the audiences' own filter macro, so it checks it rather than
    repeating it. -#}
{%- set audiences = ['aud_welcome', 'aud_nurture', 'aud_sales_ready', 'aud_cart_abandoners',
                     'aud_win_back', 'aud_vip', 'aud_advocates', 'aud_lookalike_seed',
                     'aud_at_risk_high_value', 'aud_likely_to_buy_soon', 'aud_lookalike_value_seed'] %}
with

email_granted as (

    select contact_id
    from {{ ref('dim_contact_consent') }}
    where purpose = 'email_marketing' and is_granted

),

ads_granted as (

    select contact_id
    from {{ ref('dim_contact_consent') }}
    where channel = 'ads'
    group by contact_id
    having count(*) = sum(case when is_granted then 1 else 0 end)

),

members as (
{%- for audience in audiences %}
    select '{{ audience }}' as audience, contact_id, has_email_consent, has_ad_consent
    from {{ ref(audience) }}
    {% if not loop.last %}union all{% endif %}
{%- endfor %}
),

checked as (

    select
        members.*,
        email_granted.contact_id is not null as model_email,
        ads_granted.contact_id is not null as model_ads
    from members
    left join email_granted on email_granted.contact_id = members.contact_id
    left join ads_granted on ads_granted.contact_id = members.contact_id

)

select *
from checked
where not (model_email or model_ads)
   or (audience = 'aud_sales_ready' and not model_ads)
   or has_email_consent <> model_email
   or has_ad_consent <> model_ads
