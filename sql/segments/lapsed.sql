-- Subscribed before $since and have neither opened nor clicked since: a win-back audience.
-- Composed of two other segments.
NOT segment('recent_signups') AND NOT segment('engaged_90d')
