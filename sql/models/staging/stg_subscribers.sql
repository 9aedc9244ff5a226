-- Each subscriber's recipient domain (what follows the last '@', lower-cased), for per-domain figures.
with subscribers as (
    select * from subscribers
),

final as (
    select
        subscriber_id,
        lower(split_part(email, '@', -1)) as domain
    from subscribers
)

select * from final
