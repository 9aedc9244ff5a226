-- name: stage_optins
-- The confirmed opt-ins among this aggregate run's new events (TEMP new_events, tasks/aggregate/subscriptions.py).
-- The form's fields travel in the event's data: the event log under the home is the one place the
-- tracking service writes an address the warehouse has not seen yet (a URL never carries one).
CREATE OR REPLACE TEMP TABLE staged_optins AS
SELECT event_id, data->>'email' AS email, data->>'list' AS list, nullif(data->>'first_name', '') AS first_name,
       coalesce(try_cast(data->>'consented_at' AS TIMESTAMPTZ), occurred_at) AS consented_at,
       occurred_at AS confirmed_at, ip, data->>'form_version' AS form_version,
       coalesce(data->>'source', 'form') AS source
FROM new_events
WHERE type = 'optin_confirmed' AND data->>'email' IS NOT NULL AND data->>'list' IS NOT NULL;

-- name: insert_optin_subscribers
-- An address new to the warehouse becomes an active subscriber, with its consent on the row as
-- ingest records it; one row per address however many lists it confirmed in this run.
INSERT INTO subscribers (email, email_original, first_name, status, opted_in_at, consent_source, double_opt_in,
                         needs_smtputf8)
SELECT email, email, arg_min(first_name, confirmed_at), 'active', min(confirmed_at), 'form', 'confirmed',
       strlen(email) > length(email)
FROM staged_optins AS o
WHERE NOT EXISTS (SELECT 1 FROM subscribers AS s WHERE s.email = o.email)
GROUP BY email;

-- name: reactivate_optin_subscribers
-- A confirmed opt-in is consent newer than an unsubscribe before it: that address is active again.
-- Bounced, complained and blocked addresses stay as they are (facts about the mailbox or a rule,
-- not the person's wish); an active one only gains the confirmation.
UPDATE subscribers AS s
SET status = 'active',
    status_changed_at = CASE WHEN s.status = 'unsubscribed' THEN o.confirmed_at ELSE s.status_changed_at END,
    opted_in_at = CASE WHEN s.status = 'unsubscribed' THEN o.confirmed_at ELSE coalesce(s.opted_in_at, o.confirmed_at) END,
    consent_source = coalesce(s.consent_source, 'form'),
    double_opt_in = 'confirmed',
    updated_at = now()
FROM (SELECT email, max(confirmed_at) AS confirmed_at FROM staged_optins GROUP BY email) AS o
WHERE s.email = o.email
  AND (s.status = 'active'
       OR (s.status = 'unsubscribed' AND o.confirmed_at > coalesce(s.status_changed_at, s.updated_at)));

-- name: lift_optin_suppressions
-- The opt-out's suppression ends with it, or the address would be active yet never mailed;
-- a bounce's or complaint's stays (as ingest's lift_opt_out_suppressions does).
DELETE FROM suppressions
WHERE cause LIKE 'unsubscribe%'
  AND EXISTS (SELECT 1 FROM staged_optins AS o JOIN subscribers AS s USING (email)
              WHERE o.email = suppressions.email AND s.status = 'active' AND o.confirmed_at > suppressions.created_at);

-- name: insert_consents
-- The consent record of each confirmed opt-in; keyed by its event, so a reload adds nothing.
INSERT INTO consents (event_id, subscriber_id, email, list, consented_at, confirmed_at, ip, form_version, source)
SELECT o.event_id, s.subscriber_id, o.email, o.list, o.consented_at, o.confirmed_at, o.ip, o.form_version, o.source
FROM staged_optins AS o
JOIN subscribers AS s USING (email)
ON CONFLICT (event_id) DO NOTHING;

-- name: stage_list_wishes
-- Every list choice among the new events, the latest per subscriber and list deciding, so an
-- opt-in after a list unsubscribe (or the other way round) ends as the person last asked:
-- a confirmed opt-in joins its list, a list unsubscribe leaves its lists, a preference form
-- sets each list it offered to ticked or not.
CREATE OR REPLACE TEMP TABLE staged_list_wishes AS
WITH optins AS (
    SELECT s.subscriber_id, o.list, true AS wanted, o.confirmed_at AS chosen_at
    FROM staged_optins AS o
    JOIN subscribers AS s USING (email)
),
leaves AS (
    SELECT subscriber_id, unnest(json_extract_string(data, '$.lists[*]')) AS list, false AS wanted, occurred_at AS chosen_at
    FROM new_events
    WHERE type = 'list_unsubscribe' AND subscriber_id IS NOT NULL
),
offered AS (
    SELECT subscriber_id, unnest(json_extract_string(data, '$.offered[*]')) AS list,
           coalesce(json_extract_string(data, '$.lists[*]'), []) AS chosen, occurred_at AS chosen_at
    FROM new_events
    WHERE type = 'preferences' AND subscriber_id IS NOT NULL
),
choices AS (
    SELECT subscriber_id, list, list_contains(chosen, list) AS wanted, chosen_at FROM offered
),
final AS (
    SELECT subscriber_id, list, arg_max(wanted, chosen_at) AS wanted
    FROM (SELECT * FROM optins UNION ALL SELECT * FROM leaves UNION ALL SELECT * FROM choices) AS wishes
    WHERE list IS NOT NULL
      AND EXISTS (SELECT 1 FROM subscribers AS s WHERE s.subscriber_id = wishes.subscriber_id)  -- no orphan membership
    GROUP BY subscriber_id, list
)
SELECT * FROM final;

-- name: ensure_wished_lists
-- A public list may be joined before any ingest named it.
INSERT INTO lists (name)
SELECT DISTINCT list FROM staged_list_wishes WHERE wanted
ON CONFLICT (name) DO NOTHING;

-- name: add_wished_memberships
INSERT INTO list_memberships (list_id, subscriber_id)
SELECT l.list_id, w.subscriber_id
FROM staged_list_wishes AS w
JOIN lists AS l ON l.name = w.list
WHERE w.wanted
  AND NOT EXISTS (SELECT 1 FROM list_memberships AS m WHERE m.list_id = l.list_id AND m.subscriber_id = w.subscriber_id);

-- name: remove_unwished_memberships
-- Removed, not marked: a list's members are the rows of list_memberships, which plan reads as they are.
DELETE FROM list_memberships
WHERE EXISTS (SELECT 1 FROM staged_list_wishes AS w JOIN lists AS l ON l.name = w.list
              WHERE NOT w.wanted AND l.list_id = list_memberships.list_id
                AND w.subscriber_id = list_memberships.subscriber_id);

-- name: set_frequencies
-- The preference centre's "how often" as the subscriber's attribute `frequency` (all, weekly,
-- monthly), the latest choice winning: segments and `where:` conditions can select on it.
UPDATE subscribers AS s
SET attributes = json_merge_patch(s.attributes, json_object('frequency', p.frequency)), updated_at = now()
FROM (SELECT subscriber_id, arg_max(data->>'frequency', occurred_at) AS frequency
      FROM new_events
      WHERE type = 'preferences' AND subscriber_id IS NOT NULL AND data->>'frequency' IS NOT NULL
      GROUP BY subscriber_id) AS p
WHERE s.subscriber_id = p.subscriber_id;

-- name: drop_staged_optins
DROP TABLE IF EXISTS staged_optins;

-- name: drop_staged_list_wishes
DROP TABLE IF EXISTS staged_list_wishes;

-- name: subscriber_preferences
-- What the preference centre shows (tasks/files/preferences.py): each subscriber's lists by name
-- and chosen frequency, in subscriber_id order so the published file's row groups hold id ranges.
SELECT s.subscriber_id,
       coalesce(list(l.name ORDER BY l.name) FILTER (WHERE l.name IS NOT NULL), []) AS lists,
       s.attributes->>'frequency' AS frequency
FROM subscribers AS s
LEFT JOIN list_memberships AS m USING (subscriber_id)
LEFT JOIN lists AS l USING (list_id)
GROUP BY s.subscriber_id, s.attributes->>'frequency'
ORDER BY s.subscriber_id;
