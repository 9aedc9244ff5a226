-- How is each list doing over time? Per list and day (UTC): members who joined, unsubscribed
-- (from everything, or from that list), hard-bounced or complained, and the members at the
-- end of the day. list_memberships keeps current members only, so `members` counts today's
-- members by the day they joined, and someone who left a list appears only in `unsubscribed`.
with members as (
    select * from stg_list_members
),

feedback_rows as (
    select * from stg_feedback
),

joins as (
    select list_name, timezone('UTC', joined_at)::date as day, count(*) as joined
    from members
    group by all
),

member_feedback as (
    -- of the lists' current members: everything they did (a list unsubscribe only for its lists)
    select m.list_name, f.subscriber_id, f.day, f.what
    from feedback_rows as f
    join members as m using (subscriber_id)
    where f.lists is null
    union all
    select unnest(f.lists) as list_name, f.subscriber_id, f.day, f.what
    from feedback_rows as f
    where f.lists is not null
),

feedback as (
    select
        list_name,
        day,
        count(distinct subscriber_id) filter (where what = 'unsubscribed') as unsubscribed,
        count(distinct subscriber_id) filter (where what = 'bounced') as bounced,
        count(distinct subscriber_id) filter (where what = 'complained') as complained
    from member_feedback
    group by all
),

days as (
    select
        list_name,
        day,
        coalesce(j.joined, 0) as joined,
        coalesce(f.unsubscribed, 0) as unsubscribed,
        coalesce(f.bounced, 0) as bounced,
        coalesce(f.complained, 0) as complained
    from joins as j
    full outer join feedback as f using (list_name, day)
),

final as (
    select
        *,
        sum(joined) over (partition by list_name order by day)::bigint as members
    from days
    where list_name is not null
)

select * from final
