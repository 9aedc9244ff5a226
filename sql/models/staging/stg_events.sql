-- The events being refreshed, typed for counting: which are opens, clicks, unsubscribes,
-- complaints and bounces (by kind), and which a person made. `scope` 'campaign': the events of
-- the campaigns being refreshed (each with a subscriber); 'subscriber': those of the subscribers
-- being refreshed (of any campaign, or none: an untraced bounce). An event may be in both.
with events as (
    -- all of them in a full rebuild, else those being refreshed (sql/queries/marts.sql)
    select * from scoped_events
),

final as (
    select
        event_id,
        campaign_id,
        subscriber_id,
        variant,
        type,
        link,
        url,
        occurred_at,
        not is_machine as is_human,
        type in ('unsubscribe', 'list_unsubscribe') as is_unsubscribe,
        type = 'complaint' or (type = 'bounce' and kind = 'complaint') as is_complaint,
        -- a delay notice (the reporting server still tries) is no bounce
        case when type = 'bounce' and kind in ('hard', 'soft')
                  and coalesce(data ->> 'delayed', 'false') <> 'true' then kind end as bounce_kind,
        scope
    from events
)

select * from final
