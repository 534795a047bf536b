"""What clients see of a model with looked-up features: its declared request inputs (entity keys
and request-time features) in place of the graph's inputs, with the graph's outputs. ModelMetadata,
ModelConfig, the Python server's validation and the native front end's route all use this view;
the executor and warm-up keep the graph's.
"""

from __future__ import annotations

from ferroserve._proto import model_config_pb2 as mc
from ferroserve.config import ModelSignature, TensorSpec
from ferroserve.datatypes import DATATYPES, config_name
from ferroserve.features.declaration import FeatureDeclaration


def client_signature(declaration: FeatureDeclaration, model: ModelSignature) -> ModelSignature:
    """The request inputs as tensors of [batch, columns] (or [columns] for a model without a
    batch dim), in the order the queue carries them, and the model's outputs."""
    inputs = tuple(
        TensorSpec(spec.name, DATATYPES[spec.datatype], (spec.columns,), (spec.columns,))
        for spec in declaration.request_inputs
    )
    return ModelSignature(model.max_batch_size, inputs, model.outputs)


def client_config(config: mc.ModelConfig, declaration: FeatureDeclaration) -> mc.ModelConfig:
    """A copy of the completed config whose `input` lists the request inputs, never the graph
    inputs the server builds."""
    shown = mc.ModelConfig()
    shown.CopyFrom(config)
    del shown.input[:]
    for spec in declaration.request_inputs:
        shown.input.add(
            name=spec.name,
            data_type=mc.DataType.Value(config_name(DATATYPES[spec.datatype])),
            dims=[spec.columns],
        )
    return shown
