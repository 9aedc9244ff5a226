-- The events of the subscribers being refreshed (of any campaign, or none: an untraced bounce),
-- typed as stg_events types them.
with events as (
    -- all of them (with a subscriber) in a full rebuild, else those of the subscribers being
    -- refreshed (sql/queries/marts.sql, stage_touched_inputs)
    select * from subscriber_events
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
        case when type = 'bounce' and kind in ('hard', 'soft') then kind end as bounce_kind
    from events
)

select * from final
