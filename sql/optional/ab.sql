-- Queries over tables that a warehouse may lack, run only after checking the table is there
-- (tasks/aggregate/report.py): they are kept out of sql/queries/, whose every query must prepare
-- against a fresh warehouse. tests/test_report.py prepares them against the table they read.

-- name: report_ab_decision
-- The campaign's latest A/B decision (the `ab` stage's ab_decisions): every column, so the report
-- shows what the decision stored, the final one first.
SELECT * FROM ab_decisions WHERE campaign_id = $campaign_id ORDER BY decided_at DESC LIMIT 1;
