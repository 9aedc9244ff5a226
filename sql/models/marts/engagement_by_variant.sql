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
        -- the counts and rates, in int_engagement_counts' order
        * exclude (grain, campaign_id, variant, provider, domain)
    from engagement
    where grain in ('variant', 'campaign')
)

select * from final
