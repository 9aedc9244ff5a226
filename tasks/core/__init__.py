"""What the stages share: the warehouse, named SQL, data checks, address rules, address verdicts, domain checks."""
