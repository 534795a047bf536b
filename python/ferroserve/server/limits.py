"""Server limits shared by the CLI and the server (a module of its own so that the CLI's
parser, and the metrics sidecar that shares it, import nothing heavy)."""

# Triton accepts messages up to 2 GiB; gRPC's own default (4 MiB) is too small for images.
DEFAULT_MAX_MESSAGE_BYTES = 2**31 - 1

# The largest push the admin service accepts (model file and drift reference together).
DEFAULT_MAX_PUSH_BYTES = 2 * 1024**3

# Pushes in progress at once: each holds a staging folder, an open file and a worker thread.
DEFAULT_MAX_PUSHES = 4

# A push whose client sends nothing for this long is abandoned (its partial upload removed).
DEFAULT_PUSH_IDLE_S = 60.0
