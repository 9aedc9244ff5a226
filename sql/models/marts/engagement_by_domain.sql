-- How did a campaign do at each of its 25 largest recipient domains (the part of the address
-- after '@')? The smaller domains are together under '(other)'.
with engagement as (
    select * from int_engagement_counts
),

final as (
    select
        campaign_id,
        domain,
        -- the counts and rates, in int_engagement_counts' order
        * exclude (grain, campaign_id, variant, provider, domain)
    from engagement
    where grain = 'domain'
)

select * from final
