{#
  The combination of `columns` is unique in the model (dbt_utils'
  unique_combination_of_columns, which cannot be installed here: no dbt hub access).
#}
{% test unique_combination(model, columns) %}
select {{ columns | join(', ') }}, count(*) as n_rows
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
