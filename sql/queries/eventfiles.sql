-- name: event_slices_as_records
-- The fast path (tasks/aggregate/fastread.py): a slice of whole event-log lines read by DuckDB's parallel
-- NDJSON reader with the contract's columns (mailflow/event_line.py), no per-file inference and no
-- Python per line, shaped as input_event_records for parse_event_records. `byte_offset` is the
-- slice's start (rows keep the file's order: staged_events' rowid). A line whose `data` is no
-- object keeps it as a field; a line other than an open or a click without `data` may be an old
-- flat one (its fields at the top level, which this reader would drop): its `problem` sends the
-- file to the block reader, which keeps them.
WITH lines AS (
    SELECT * FROM read_json($path, format = 'newline_delimited', auto_detect = false,
                            columns = {event_id: 'VARCHAR', type: 'VARCHAR', campaign_id: 'VARCHAR',
                                       subscriber_id: 'VARCHAR', variant: 'VARCHAR', link: 'VARCHAR', url: 'VARCHAR',
                                       occurred_at: 'VARCHAR', ip: 'VARCHAR', user_agent: 'VARCHAR', kind: 'VARCHAR',
                                       reason: 'VARCHAR', status: 'VARCHAR', smtp_code: 'VARCHAR',
                                       diagnostic: 'VARCHAR', data: 'JSON'})
),
final AS (
    SELECT $file::VARCHAR AS file, $byte_offset::BIGINT AS byte_offset, 0::BIGINT AS line, false AS tail,
           CASE WHEN l.data IS NULL AND l.type NOT IN ('open', 'click') THEN 'flat' END AS problem,
           NULL::VARCHAR AS text,
           l.* EXCLUDE (data),
           CASE WHEN l.data IS NULL THEN '{}'
                WHEN json_type(l.data) = 'OBJECT' THEN l.data::VARCHAR
                ELSE json_object('data', l.data)::VARCHAR END AS data
    FROM lines AS l
)
SELECT * FROM final;

-- name: fast_staged_files
-- The files whose fast-path rows include one the judge rejected (or an old flat line): their rows
-- are taken back and the block reader reads them, to keep each reject's line, offset and text.
SELECT file, count(*) AS rows, bool_or(reject IS NOT NULL) AS rejected
FROM staged_events
GROUP BY file;

-- name: unstage_file
DELETE FROM staged_events WHERE file = $file;
