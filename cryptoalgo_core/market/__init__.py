"""Pure market-data logic: validation into clean rows + rejects, gap detection, reconciliation."""
