"""Prints the byte strings the crate's unit tests compare against, computed by Feast itself.

Run with the Python that has `feast` installed (`pip install 'feast[redis]'`), e.g.
`python rust/feast/tools/feast_vectors.py`; paste its output into the tests' tables when Feast
changes its layout. Nothing here reimplements Feast: every byte comes from Feast's own helpers.
"""

import warnings
from datetime import datetime, timezone

import feast
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import _mmh3, _redis_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Null, Value
from feast.type_map import python_values_to_proto_values
from feast.types import Float32, Float64, Int32, Int64
from google.protobuf.timestamp_pb2 import Timestamp


def rust(data: bytes) -> str:
    return 'b"' + "".join(f"\\x{b:02x}" for b in data) + '"'


print(f"// Feast {feast.__version__}")
print("// serialize_entity_key: (version, join keys, values, project, redis key)")
keys = [
    (["driver_id"], [Value(int64_val=1001)]),
    (["driver_id"], [Value(int64_val=-7)]),
    (["user"], [Value(string_val="alice")]),
    (["blob"], [Value(bytes_val=b"\x00\xff")]),
    (["small"], [Value(int32_val=-3)]),
    # Sorted by join key name: "card" before "user_id".
    (["user_id", "card"], [Value(int64_val=42), Value(string_val="c-9")]),
]
for version in (3, 2):
    for join_keys, values in keys:
        key = EntityKey(join_keys=join_keys, entity_values=values)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            serialized = serialize_entity_key(key, entity_key_serialization_version=version)
            redis_key = _redis_key("proj", key, entity_key_serialization_version=version)
        assert redis_key == serialized + b"proj"
        print(f"({version}, {join_keys}, {[str(v).strip() for v in values]}, {rust(serialized)}),")

print("// _mmh3(view:feature)")
for name in ["driver_hourly_stats:conv_rate", "driver_hourly_stats:acc_rate", "user:age", "v:f", "vue:café"]:
    view, feature = name.split(":", 1)
    print(f'("{view}", "{feature}", {rust(_mmh3(name))}),')

print("// Value protos as Feast writes them: (python value, feast type, bytes)")
for value, dtype in [
    (0.5, Float32),
    (-1.25, Float64),
    (0.0, Float32),
    (1234567890123, Int64),
    (-5, Int64),
    (-5, Int32),
    (7, Int32),
    (None, Float32),
    (float("nan"), Float64),
]:
    (proto,) = python_values_to_proto_values([value], dtype.to_value_type())
    print(f"({value!r}, {dtype}, {proto.WhichOneof('val')}, {rust(proto.SerializeToString())}),")
print(f"// Value(null_val=NULL): {rust(Value(null_val=Null.NULL).SerializeToString())}")
print(f"// Value(string_val='x'): {rust(Value(string_val='x').SerializeToString())}")

print("// Timestamp.FromDatetime: (datetime, bytes, unix micros)")
for moment in [
    datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc),
    datetime(2026, 12, 1, 10, 0, 0, 123456, tzinfo=timezone.utc),
    datetime(1970, 1, 1, tzinfo=timezone.utc),
    datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=timezone.utc),
]:
    ts = Timestamp()
    ts.FromDatetime(moment)
    micros = ts.seconds * 1_000_000 + ts.nanos // 1000
    print(f"({moment.isoformat()}, {rust(ts.SerializeToString())}, {micros}),")
