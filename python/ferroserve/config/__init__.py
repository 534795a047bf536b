"""Model configuration: Triton's `config.pbtxt` read unchanged (text.py), the fields ferroserve
does not honour named in warnings (unsupported.py), Triton's validation rules (validation.py),
completion from the ONNX graph and the checks that config and graph agree (autocomplete.py,
triton_fed.py), and the resulting `ModelSignature` (signature.py).

Called by the repository (reading) and the loader (the rest) when a version is loaded.
"""

from ferroserve.config.autocomplete import (
    DEFAULT_MAX_BATCH_SIZE,
    DEFAULT_MODEL_FILE,
    complete_config,
)
from ferroserve.config.signature import (
    InputLayout,
    ModelSignature,
    OnnxTensor,
    TensorSpec,
    reshape_dims,
)
from ferroserve.config.text import CONFIG_FILE, PLATFORM, parse_config, read_config
from ferroserve.config.unsupported import unsupported_fields, warn_unsupported
from ferroserve.config.validation import validate_io, validate_model_config

__all__ = [
    "CONFIG_FILE",
    "DEFAULT_MAX_BATCH_SIZE",
    "DEFAULT_MODEL_FILE",
    "PLATFORM",
    "InputLayout",
    "ModelSignature",
    "OnnxTensor",
    "TensorSpec",
    "complete_config",
    "parse_config",
    "read_config",
    "reshape_dims",
    "unsupported_fields",
    "validate_io",
    "validate_model_config",
    "warn_unsupported",
]
