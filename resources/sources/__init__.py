"""Market-data sources behind one interface (see base.MarketSource)."""
