"""Leaderboard: read MLflow runs once into a tidy table and render it (HTML, Markdown)."""
