-- Every time a subscriber said no or could not be reached, across campaigns: unsubscribes
-- (from everything, or from the lists the event names), complaints and hard bounces (at send
-- time or reported later), one row each with its day.
with events as (
    select * from events
),

deliveries as (
    select * from deliveries
),

from_events as (
    select
        subscriber_id,
        timezone('UTC', occurred_at)::date as day,
        case
            when type in ('unsubscribe', 'list_unsubscribe') then 'unsubscribed'
            when type = 'complaint' or kind = 'complaint' then 'complained'
            else 'bounced'
        end as what,
        -- a list unsubscribe names the lists left (the member is gone from list_memberships)
        case when type = 'list_unsubscribe' then json_extract_string(data, '$.lists[*]') end as lists
    from events
    where type in ('unsubscribe', 'list_unsubscribe', 'complaint')
       or (type = 'bounce' and kind in ('hard', 'complaint'))
),

from_deliveries as (
    select subscriber_id, timezone('UTC', sent_at)::date as day, 'bounced' as what, null::varchar[] as lists
    from deliveries
    where status = 'bounced' and coalesce(kind, 'hard') = 'hard'
),

final as (
    select * from from_events
    union all
    select * from from_deliveries
)

select * from final
