"""The preflight stage: checks that a campaign's mail will be accepted (DNS authentication, headers, links, spam score, size)."""
