"""The studio's prompt helpers: one CaptionService (model on demand, never in a job's way) and its /api routes."""
