{#- Stages move forward only, except lapse, churn and return. -#}
select stage_history_id
from {{ ref('fct_lifecycle_stage_history') }} as history
inner join {{ ref('lifecycle_stages') }} as previous on previous.stage = history.previous_stage
where history.transition_type = 'forward'
  and history.stage_order <= previous.stage_order
