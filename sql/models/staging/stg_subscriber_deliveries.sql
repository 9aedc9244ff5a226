-- Every delivery (any campaign) to the subscribers being refreshed: when they were last mailed,
-- how many campaigns reached them and which bounced.
with deliveries as (
    -- all of them in a full rebuild, else those of the subscribers being refreshed (tasks/aggregate/marts.py)
    select * from subscriber_deliveries
),

final as (
    select
        d.campaign_id,
        d.subscriber_id,
        d.status,
        case when d.status = 'bounced' then coalesce(d.kind, 'hard') end as bounce_kind,
        d.sent_at
    from deliveries as d
)

select * from final
