-- Machine opens and clicks are flagged, never deleted (issue 13): `is_machine` says whether an
-- event is a privacy proxy's, an image proxy's or a link scanner's, `machine_reason` which rule
-- said so (tasks/aggregate/machine.py lists them). Recomputed for a recipient whenever new
-- events or deliveries of theirs arrive, since evidence (a delivery time, a later click burst)
-- may come in a later file.
ALTER TABLE events ADD COLUMN machine_reason VARCHAR;
