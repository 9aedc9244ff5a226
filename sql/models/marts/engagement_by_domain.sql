-- How did a campaign do at each of its 25 largest recipient domains (the part of the address
-- after '@')? The smaller domains are together under '(other)'.
with engagement as (
    select * from int_engagement_counts
),

final as (
    select
        campaign_id,
        domain,
        sent, delivered, deferred, hard_bounced, soft_bounced, complaints,
        unique_opens, total_opens, unique_clicks, total_clicks,
        human_unique_opens, human_total_opens, human_unique_clicks, human_total_clicks, unsubscribes,
        open_rate, human_open_rate, click_rate, human_click_rate, click_to_open, human_click_to_open,
        unsubscribe_rate, bounce_rate, complaint_rate
    from engagement
    where grain = 'domain'
)

select * from final
