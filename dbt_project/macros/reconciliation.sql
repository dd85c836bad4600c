{#
  Helpers of the reconciliation marts (models/marts).
#}

{#
  A message with its object-specific values taken out, so that the same problem of many
  objects groups under one reason: quoted values (Python reprs, 'x' or "x") become <value>,
  array positions [3] become [*], ISO dates and date-times <date>, and amounts (a number with
  decimals, its sign included) and numbers of five or more digits (ids, byte counts) <n>
  (an amount's whole part alone once made '(-<n>.23)'). A quote right after a letter is an apostrophe
  (creditor's), not the start of a value.
#}
{% macro normalize_reason(message) -%}
    regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(
        {{ message }},
        '(^|[^A-Za-z0-9])''(?:[^''\\]|\\.)*''', '\1<value>', 'g'),
        '(^|[^A-Za-z0-9])"(?:[^"\\]|\\.)*"', '\1<value>', 'g'),
        '\[[0-9]+\]', '[*]', 'g'),
        '[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9:.]+Z?)?', '<date>', 'g'),
        '-?\b[0-9]+\.[0-9]+\b|\b[0-9]{5,}\b', '<n>', 'g')
{%- endmacro %}
