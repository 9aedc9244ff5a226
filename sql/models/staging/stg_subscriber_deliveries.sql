-- Every delivery (any campaign) to the subscribers being refreshed: when they were last mailed,
-- how many campaigns reached them and which bounced.
with deliveries as (
    select * from deliveries
),

scope as (
    select subscriber_id from mart_subscribers
),

final as (
    select
        d.campaign_id,
        d.subscriber_id,
        d.status,
        case when d.status = 'bounced' then coalesce(d.kind, 'hard') end as bounce_kind,
        d.sent_at
    from deliveries as d
    semi join scope using (subscriber_id)
)

select * from final
