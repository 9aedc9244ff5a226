-- Clicked a link in the campaign $campaign (by default the campaign being planned: set
-- params: {campaign: spring-sale} to follow up another); link scanners' clicks do not count.
EXISTS (
    SELECT 1
    FROM events AS e
    WHERE e.subscriber_id = subscribers.subscriber_id
      AND e.type = 'click'
      AND NOT e.is_machine
      AND e.campaign_id = $campaign
)
