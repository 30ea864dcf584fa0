"""The site layer: what gathers every app by nature (URL wiring, the overview
and database pages, /metrics). Nothing in controlpanel's core, backups or
drills imports it."""
