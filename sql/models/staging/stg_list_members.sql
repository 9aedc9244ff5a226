-- Who is in which list (by name) and since when. list_memberships keeps current members only:
-- a subscriber who left a list is no longer in it.
with lists as (
    select * from lists
),

list_memberships as (
    select * from list_memberships
),

final as (
    select
        l.name as list_name,
        m.subscriber_id,
        m.created_at as joined_at
    from list_memberships as m
    join lists as l using (list_id)
)

select * from final
