-- How did a campaign do at each mailbox provider group (gmail, microsoft, yahoo, other, from
-- the delivery's provider)? Recipients with events but no delivery count under 'other'.
with engagement as (
    select * from int_engagement_counts
),

final as (
    select
        campaign_id,
        provider,
        sent, delivered, deferred, hard_bounced, soft_bounced, complaints,
        unique_opens, total_opens, unique_clicks, total_clicks,
        human_unique_opens, human_total_opens, human_unique_clicks, human_total_clicks, unsubscribes,
        open_rate, human_open_rate, click_rate, human_click_rate, click_to_open, human_click_to_open,
        unsubscribe_rate, bounce_rate, complaint_rate
    from engagement
    where grain = 'provider'
)

select * from final
