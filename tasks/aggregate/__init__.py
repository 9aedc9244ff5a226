"""Aggregate: logs into the warehouse, the report and exports."""
