"""Developer tools that do not ship in the wheel (README screenshots)."""
