-- Every event (any campaign, traced or not) of the subscribers being refreshed: their opens,
-- clicks and bounces over time, and which a person made.
with events as (
    select * from events
),

scope as (
    select subscriber_id from mart_subscribers
),

final as (
    select
        e.event_id,
        e.campaign_id,
        e.subscriber_id,
        e.type,
        e.occurred_at,
        not e.is_machine as is_human,
        case when e.type = 'bounce' and e.kind in ('hard', 'soft') then e.kind end as bounce_kind
    from events as e
    semi join scope using (subscriber_id)
)

select * from final
