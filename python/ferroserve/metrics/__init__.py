"""Metrics, serving side: gRPC calls by method and code (`rpc`), and the snapshot file the
metrics sidecar reads (`snapshot`, written by `recorder`; the sidecar supervised by
`supervisor`). Nothing here runs per scrape: the serving process only ever writes the snapshot.
How a request ended is `ferroserve.outcomes`, recorded where it ends."""
