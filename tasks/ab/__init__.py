"""The A/B winner: statistics, the decision, its record in ab_decisions, and which campaigns are due for one."""
