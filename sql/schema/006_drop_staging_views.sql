-- Staging relations used to be created as lasting views (input_subscribers, input_quarantine over
-- deleted staging Parquet files; campaign_condition over a plan's condition) and failed when an
-- analyst queried them. They are temporary views now (tasks/core/warehouse.py inputs); drop what
-- older runs left behind.
DROP VIEW IF EXISTS input_subscribers;
DROP VIEW IF EXISTS input_quarantine;
DROP VIEW IF EXISTS campaign_condition;
