-- What happened at send time to each recipient being refreshed: the ledger's final outcome,
-- its bounce kind and the provider group of the recipient's domain, and whether it belongs to a
-- campaign being refreshed (per-campaign marts) or a subscriber being refreshed (subscriber_engagement).
with deliveries as (
    -- all of them in a full rebuild, else those of the campaigns and subscribers being
    -- refreshed (sql/queries/marts.sql, stage_touched_inputs)
    select * from scoped_deliveries
),

final as (
    select
        campaign_id,
        subscriber_id,
        variant,
        status,
        -- a send-time bounce the classifier did not label is a 5xx: hard, as the ledger's rules say
        case when status = 'bounced' then coalesce(kind, 'hard') end as bounce_kind,
        coalesce(provider, 'other') as provider,
        sent_at,
        in_campaign_scope,
        in_subscriber_scope
    from deliveries
)

select * from final
