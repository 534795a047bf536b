"""How a model version executes: loading and execution providers (`session`), the native engine
for CPU models (`native`), executor threads on onnxruntime's Python binding for the rest
(`executor`), inline execution (`inline`), warm-up, and the served model (`model`)."""
