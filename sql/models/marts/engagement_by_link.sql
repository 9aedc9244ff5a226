-- Which links of a campaign were clicked, how often and by how many people (raw and human)?
-- A link is its index in the campaign's links.json; a templated link (/r?u=...) has no index
-- and is told apart by its URL.
with events as (
    select * from stg_events
),

clicks as (
    select
        campaign_id,
        subscriber_id,
        link,
        case when link is null then url end as templated_url,
        url,
        is_human
    from events
    where type = 'click' and in_campaign_scope
),

final as (
    select
        campaign_id,
        link,
        coalesce(templated_url, mode(url)) as url,
        count(*) as clicks,
        count(distinct subscriber_id) as unique_clicks,
        count(*) filter (where is_human) as human_clicks,
        count(distinct subscriber_id) filter (where is_human) as human_unique_clicks
    from clicks
    group by campaign_id, link, templated_url
)

select * from final
