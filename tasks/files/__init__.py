"""The files passed between stages: manifest, ledger, suppression snapshot and logs, tallies, stop requests."""
