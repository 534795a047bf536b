"""How a model version executes: onnxruntime sessions, execution providers, executor threads."""
