"""Protocol buffers of the KServe v2 / Triton gRPC inference protocol.

The definitions live in ``protos/*.proto`` (see ``tools/gen_protos.py``) and are
shipped as a serialized descriptor set, ``inference.binpb``. It is loaded into a
*private* :class:`~google.protobuf.descriptor_pool.DescriptorPool`, :data:`POOL`,
rather than protobuf's default pool: tritonclient registers the very same
``inference.*`` symbols in the default pool, and both are imported in one process
(tests, benchmarks). The message classes are built from :data:`POOL` by
:mod:`.grpc_service_pb2` and :mod:`.model_config_pb2`; their wire format is
identical to Triton's.
"""

from __future__ import annotations

from importlib import resources
from types import ModuleType

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FileDescriptor
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from google.protobuf.message import Message

__all__ = ["DESCRIPTOR_SET", "POOL", "populate_module"]

DESCRIPTOR_SET = "inference.binpb"


def _load_pool() -> descriptor_pool.DescriptorPool:
    data = resources.files(__name__).joinpath(DESCRIPTOR_SET).read_bytes()
    file_set = descriptor_pb2.FileDescriptorSet.FromString(data)
    pool = descriptor_pool.DescriptorPool()
    for file_proto in file_set.file:  # dependencies come first (--include_imports)
        pool.Add(file_proto)
    return pool


POOL: descriptor_pool.DescriptorPool = _load_pool()


def populate_module(module: ModuleType, proto_file: str) -> FileDescriptor:
    """Set the names generated ``*_pb2`` code would define on ``module``.

    For ``proto_file`` in :data:`POOL` this defines ``DESCRIPTOR``, one class per
    top-level message (nested messages and enums are reachable as class
    attributes, as in generated code), an ``EnumTypeWrapper`` per top-level enum
    and a module constant per top-level enum value.
    """
    file_desc = POOL.FindFileByName(proto_file)
    namespace = vars(module)
    namespace["DESCRIPTOR"] = file_desc
    for name, enum_desc in file_desc.enum_types_by_name.items():
        namespace[name] = EnumTypeWrapper(enum_desc)
        for value in enum_desc.values:
            namespace[value.name] = value.number
    for name, msg_desc in file_desc.message_types_by_name.items():
        namespace[name] = _message_class(msg_desc, module.__name__, "")
    return file_desc


def _message_class(msg_desc: Descriptor, module_name: str, prefix: str) -> type[Message]:
    """Class for ``msg_desc`` (and its nested classes), named as generated code names them."""
    cls = message_factory.GetMessageClass(msg_desc)
    cls.__module__ = module_name
    cls.__qualname__ = prefix + msg_desc.name
    for nested in msg_desc.nested_types:
        # Keep a strong reference: the pool only caches message classes weakly.
        setattr(cls, nested.name, _message_class(nested, module_name, f"{cls.__qualname__}."))
    return cls
