-- The engagement and feedback events being refreshed, typed for counting: which are opens,
-- clicks, unsubscribes, complaints and bounces (by kind), which a person made, and whether each
-- belongs to a campaign being refreshed or a subscriber being refreshed.
with events as (
    -- all of them in a full rebuild, else those of the campaigns and subscribers being
    -- refreshed (sql/queries/marts.sql, stage_touched_inputs)
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
        case when type = 'bounce' and kind in ('hard', 'soft') then kind end as bounce_kind,
        in_campaign_scope,
        in_subscriber_scope
    from events
)

select * from final
