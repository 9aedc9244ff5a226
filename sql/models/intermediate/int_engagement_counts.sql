-- Counts and rates per campaign at four grains in one pass over the recipients: per variant,
-- the campaign's total, per provider and per recipient domain (the campaign's 25 largest
-- domains by recipients, the rest as '(other)'). The three per-dimension marts select their grain.
-- Rates are over delivered messages, except bounce_rate: a send-time bounce is never
-- delivered, so bounces are over sent. Click-to-open is unique clicks over unique opens.
with recipients as (
    select * from int_recipient_outcomes
),

domain_sizes as (
    select
        campaign_id,
        domain,
        row_number() over (partition by campaign_id order by count(*) desc, domain) as size_rank
    from recipients
    group by campaign_id, domain
),

labelled as (
    select
        r.*,
        case when ds.size_rank <= 25 then r.domain else '(other)' end as domain_label
    from recipients as r
    join domain_sizes as ds using (campaign_id, domain)
),

counts as (
    select
        case
            when grouping(variant) = 0 then 'variant'
            when grouping(provider) = 0 then 'provider'
            when grouping(domain_label) = 0 then 'domain'
            else 'campaign'
        end as grain,
        campaign_id,
        variant,
        provider,
        domain_label as domain,
        count(subscriber_id) filter (where was_sent) as sent,
        count(subscriber_id) filter (where delivered) as delivered,
        count(subscriber_id) filter (where deferred) as deferred,
        count(subscriber_id) filter (where hard_bounced) as hard_bounced,
        count(subscriber_id) filter (where soft_bounced) as soft_bounced,
        count(subscriber_id) filter (where complained) as complaints,
        count(subscriber_id) filter (where opens > 0) as unique_opens,
        coalesce(sum(opens), 0)::bigint as total_opens,
        count(subscriber_id) filter (where clicks > 0) as unique_clicks,
        coalesce(sum(clicks), 0)::bigint as total_clicks,
        count(subscriber_id) filter (where human_opens > 0) as human_unique_opens,
        coalesce(sum(human_opens), 0)::bigint as human_total_opens,
        count(subscriber_id) filter (where human_clicks > 0) as human_unique_clicks,
        coalesce(sum(human_clicks), 0)::bigint as human_total_clicks,
        count(subscriber_id) filter (where unsubscribed) as unsubscribes
    from labelled
    group by grouping sets ((campaign_id, variant), (campaign_id), (campaign_id, provider), (campaign_id, domain_label))
),

final as (
    select
        *,
        unique_opens / nullif(delivered, 0) as open_rate,
        human_unique_opens / nullif(delivered, 0) as human_open_rate,
        unique_clicks / nullif(delivered, 0) as click_rate,
        human_unique_clicks / nullif(delivered, 0) as human_click_rate,
        unique_clicks / nullif(unique_opens, 0) as click_to_open,
        human_unique_clicks / nullif(human_unique_opens, 0) as human_click_to_open,
        unsubscribes / nullif(delivered, 0) as unsubscribe_rate,
        (hard_bounced + soft_bounced) / nullif(sent, 0) as bounce_rate,
        complaints / nullif(delivered, 0) as complaint_rate
    from counts
)

select * from final
