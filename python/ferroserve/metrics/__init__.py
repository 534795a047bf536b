"""Metrics, serving side: how a request ended (`outcomes`), gRPC calls by method and code
(`rpc`), and the snapshot file the metrics sidecar reads (`snapshot`, written by `recorder`).
Nothing here runs per scrape: the serving process only ever writes the snapshot."""
