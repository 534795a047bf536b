"""The metrics sidecar: a separate process that reads the serving process's snapshot file and
serves `/metrics` (Prometheus text or OpenMetrics), a live dashboard at `/` and its data at
`/api/dashboard`. Scrapes and page loads never reach the serving process."""
