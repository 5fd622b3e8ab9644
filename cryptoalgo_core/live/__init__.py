"""Paper trading: the production model, live signals, the paper book, kill switches, reconciliation (pure)."""
