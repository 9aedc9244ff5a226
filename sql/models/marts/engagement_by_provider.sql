-- How did a campaign do at each mailbox provider group (gmail, microsoft, yahoo, other, from
-- the delivery's provider)? Recipients with events but no delivery count under 'other'.
with engagement as (
    select * from int_engagement_counts
),

final as (
    select
        campaign_id,
        provider,
        -- the counts and rates, in int_engagement_counts' order
        * exclude (grain, campaign_id, variant, provider, domain)
    from engagement
    where grain = 'provider'
)

select * from final
