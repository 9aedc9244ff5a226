-- Every event (any campaign, traced or not) of the subscribers being refreshed: their opens,
-- clicks and bounces over time, and which a person made.
with events as (
    -- all of them in a full rebuild, else those of the subscribers being refreshed (tasks/aggregate/marts.py)
    select * from subscriber_events
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
)

select * from final
