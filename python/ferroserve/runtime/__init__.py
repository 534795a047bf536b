"""How a model version executes: config parameters (`settings`), execution providers
(`placement`) and engine sessions (`session`), the executor protocol (`executor`) and its two
implementations (`native`: onnxruntime's C API from Rust; `binding`: onnxruntime's Python
binding), warm-up, loading (`loader`) and the served model (`model`)."""
