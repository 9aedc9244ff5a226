-- What happened at send time to each recipient of the campaigns being refreshed: the ledger's
-- final outcome, its bounce kind and the provider group of the recipient's domain.
with deliveries as (
    select * from deliveries
),

scope as (
    select campaign_id from mart_campaigns
),

final as (
    select
        d.campaign_id,
        d.subscriber_id,
        d.variant,
        d.status,
        -- a send-time bounce the classifier did not label is a 5xx: hard, as the ledger's rules say
        case when d.status = 'bounced' then coalesce(d.kind, 'hard') end as bounce_kind,
        coalesce(d.provider, 'other') as provider,
        d.sent_at
    from deliveries as d
    semi join scope using (campaign_id)
)

select * from final
