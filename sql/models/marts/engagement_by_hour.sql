-- When after the send do people open and click? Opens and clicks (raw and human) by whole
-- hours since the recipient's own delivery (a recipient without one: since the campaign's
-- first delivery), per variant and for the campaign as a whole (variant '*'). An event
-- stamped before its delivery (clock skew) counts in hour 0.
with hours as (
    select * from int_recipient_events where grain = 'hour'
),

final as (
    select
        campaign_id,
        case when grouping(variant) = 0 then variant else '*' end as variant,
        hours_since_send,
        sum(opens)::bigint as opens,
        sum(clicks)::bigint as clicks,
        sum(human_opens)::bigint as human_opens,
        sum(human_clicks)::bigint as human_clicks
    from hours
    group by grouping sets ((campaign_id, variant, hours_since_send), (campaign_id, hours_since_send))
)

select * from final
