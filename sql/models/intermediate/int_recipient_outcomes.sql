-- One row per recipient of each campaign being refreshed: how its send ended and what it did
-- afterwards, so every per-campaign count is a sum over recipients and a unique count is a
-- count of recipients. A recipient's events count under its delivery's variant (else the one
-- its events name), so unique counts add up over variants. A bounce reported at send time and
-- again by the mailbox or a webhook is one bounced recipient; hard wins over soft.
with deliveries as (
    select * from stg_deliveries where in_campaign_scope
),

recipient_events as (
    select * from int_recipient_events where in_campaign_scope
),

subscribers as (
    select * from stg_subscribers
),

recipients as (
    select
        campaign_id,
        subscriber_id,
        coalesce(d.variant, e.named_variant) as variant,
        d.provider,
        d.status,
        d.sent_at,
        coalesce(e.opens, 0) as opens,
        coalesce(e.human_opens, 0) as human_opens,
        coalesce(e.clicks, 0) as clicks,
        coalesce(e.human_clicks, 0) as human_clicks,
        coalesce(e.unsubscribed, false) as unsubscribed,
        coalesce(e.complained, false) as complained,
        coalesce(d.bounce_kind = 'hard', false) or coalesce(e.hard_bounce_event, false) as hard_bounced,
        coalesce(d.bounce_kind = 'soft', false) or coalesce(e.soft_bounce_event, false) as any_soft_bounce
    from deliveries as d
    full outer join recipient_events as e using (campaign_id, subscriber_id)
),

final as (
    select
        r.campaign_id,
        r.subscriber_id,
        r.variant,
        coalesce(r.provider, 'other') as provider,
        coalesce(s.domain, '(unknown)') as domain,
        r.sent_at,
        -- handed to SMTP (or perhaps: in doubt); a send-time suppression was never sent
        coalesce(r.status not in ('suppressed'), false) as was_sent,
        coalesce(r.status = 'delivered', false) as delivered,
        coalesce(r.status = 'deferred', false) as deferred,
        r.hard_bounced,
        r.any_soft_bounce and not r.hard_bounced as soft_bounced,
        r.complained,
        r.unsubscribed,
        r.opens,
        r.human_opens,
        r.clicks,
        r.human_clicks
    from recipients as r
    left join subscribers as s using (subscriber_id)
)

select * from final
