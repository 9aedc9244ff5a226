-- How did each variant of a campaign do, and the campaign as a whole? Delivery outcomes,
-- raw and human (machine opens and scanner clicks left out) opens and clicks, unsubscribes,
-- complaints and their rates. The campaign's total row has variant '*'; recipients whose
-- variant is known from neither their delivery nor their events are under '(unknown)'.
with engagement as (
    select * from int_engagement_counts
),

final as (
    select
        campaign_id,
        case grain when 'campaign' then '*' else coalesce(variant, '(unknown)') end as variant,
        sent, delivered, deferred, hard_bounced, soft_bounced, complaints,
        unique_opens, total_opens, unique_clicks, total_clicks,
        human_unique_opens, human_total_opens, human_unique_clicks, human_total_clicks, unsubscribes,
        open_rate, human_open_rate, click_rate, human_click_rate, click_to_open, human_click_to_open,
        unsubscribe_rate, bounce_rate, complaint_rate
    from engagement
    where grain in ('variant', 'campaign')
)

select * from final
