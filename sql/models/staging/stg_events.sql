-- The engagement and feedback events of the campaigns being refreshed, typed for counting:
-- which are opens, clicks, unsubscribes, complaints and bounces (by kind), and which a person made.
with events as (
    select * from events
),

scope as (
    select campaign_id from mart_campaigns
),

final as (
    select
        e.event_id,
        e.campaign_id,
        e.subscriber_id,
        e.variant,
        e.type,
        e.link,
        e.url,
        e.occurred_at,
        not e.is_machine as is_human,
        e.type in ('unsubscribe', 'list_unsubscribe') as is_unsubscribe,
        e.type = 'complaint' or (e.type = 'bounce' and e.kind = 'complaint') as is_complaint,
        case when e.type = 'bounce' and e.kind in ('hard', 'soft') then e.kind end as bounce_kind
    from events as e
    semi join scope using (campaign_id)
)

select * from final
