"""Plan: a campaign's spec, its where guard, its frozen audience and chunk files."""
