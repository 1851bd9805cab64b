{#- Nobody without any channel's consent is ever in an audience, and sales-ready holds
    only ad-consented contacts until activation applies consent per destination. -#}
{%- set audiences = ['aud_welcome', 'aud_nurture', 'aud_sales_ready', 'aud_cart_abandoners',
                     'aud_win_back', 'aud_vip', 'aud_advocates', 'aud_lookalike_seed',
                     'aud_at_risk_high_value', 'aud_likely_to_buy_soon', 'aud_lookalike_value_seed'] %}
{%- for audience in audiences %}
select '{{ audience }}' as audience, contact_id
from {{ ref(audience) }}
where not (has_email_consent or has_ad_consent)
{%- if audience == 'aud_sales_ready' %} or not has_ad_consent{% endif %}
{% if not loop.last %}union all{% endif %}
{%- endfor %}
