"""Type stubs of `ferroserve._core`, the Rust extension (crate rust/python).

It owns the request path: the native gRPC front end, the dynamic batching queue (Triton
`dynamic_batching` semantics) that executor threads drain without the GIL, the native engine
(onnxruntime's C API), and the BYTES wire format and tensor sizes the Python general path uses.
"""

import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal, final

import numpy as np
import numpy.typing as npt

__all__ = [
    "DURATION_BUCKETS_NS",
    "LOOKUP_BUCKETS_NS",
    "REQUEST_OUTCOMES",
    "SHADOW_DIFFERENCE_BOUNDS",
    "Batch",
    "BatchQueue",
    "DeadlineExceededError",
    "DriftTracker",
    "FeatureNotFoundError",
    "FeaturePlan",
    "FeatureStore",
    "FeatureTable",
    "FerroserveError",
    "Frontend",
    "InOrder",
    "InternalError",
    "InvalidInputError",
    "ModelNotFoundError",
    "NativeRoute",
    "OrtExecutor",
    "OrtModel",
    "QueuePolicy",
    "RequestCancelledError",
    "ResourceExhaustedError",
    "Restrictions",
    "SequencePlan",
    "UnavailableError",
    "check_server_tls",
    "decode_bytes_tensor",
    "drift_categorical_profile",
    "drift_numeric_profile",
    "encode_bytes_tensor",
    "expected_byte_size",
    "feast_write",
    "shadow_difference",
    "validate_bytes_tensor",
]

__version__: str

class FerroserveError(Exception):
    """Base class of every ferroserve error."""

class InvalidInputError(FerroserveError):
    """The request or configuration is malformed (gRPC INVALID_ARGUMENT)."""

class ModelNotFoundError(FerroserveError):
    """No such model or version (gRPC NOT_FOUND)."""

class FeatureNotFoundError(FerroserveError):
    """An entity key has no usable row in a feature view that rejects misses (gRPC NOT_FOUND)."""

class UnavailableError(FerroserveError):
    """The model is not accepting requests, e.g. it is unloading (gRPC UNAVAILABLE)."""

class ResourceExhaustedError(FerroserveError):
    """A queue limit was hit (gRPC RESOURCE_EXHAUSTED)."""

class DeadlineExceededError(FerroserveError):
    """The request timed out before it ran (gRPC DEADLINE_EXCEEDED)."""

class RequestCancelledError(FerroserveError):
    """The client cancelled the request (gRPC CANCELLED)."""

class InternalError(FerroserveError):
    """A server-side invariant was broken (gRPC INTERNAL)."""

def check_server_tls(cert: str, key: str, root_cert: str | None = None) -> None:
    """Checks that `cert` (a PEM certificate chain), `key` (its private key) and `root_cert`
    (the CA client certificates chain to, for mutual TLS) make a usable TLS server, by the
    native front end's rules; ValueError naming the flag and the file otherwise."""

def decode_bytes_tensor(
    raw: bytes, count: int, name: str, utf8: bool = False
) -> npt.NDArray[np.object_]:
    """Decodes a BYTES tensor's raw contents (per element: 4-byte little-endian length, then
    the bytes) into a 1-D object array of `count` `bytes` objects, or of `str` objects with
    `utf8` (onnxruntime string tensors take str; it would turn bytes into their repr).

    Raises InvalidInputError naming input `name` and the problem: a truncated length prefix at
    element i, element i claiming more bytes than remain, trailing bytes after the last element,
    a count mismatch (expected X elements, got Y), or with `utf8` an element that is not valid
    UTF-8; also for a negative `count`. Large buffers are parsed without the GIL.
    """

def validate_bytes_tensor(raw: bytes, count: int, name: str, utf8: bool = False) -> None:
    """The checks of `decode_bytes_tensor` without building any object (request validation)."""

def encode_bytes_tensor(values: npt.NDArray[Any]) -> bytes:
    """Encodes an object, `bytes_` or `str_` array of any shape (row-major) in the BYTES wire
    format. Elements must be bytes, bytearray or str (encoded as UTF-8); anything else, or an
    array of another dtype, raises InvalidInputError.
    """

def expected_byte_size(datatype: str, shape: Sequence[int]) -> int:
    """The byte size a tensor of a fixed-size KServe v2 `datatype` ("FP32", ...) and `shape`
    must have. InvalidInputError for an unknown datatype, a negative dimension, a size that
    overflows, or BYTES (variable size).
    """

REQUEST_OUTCOMES: tuple[str, ...]
"""How a request can end, in the order `BatchQueue.record_request` indexes: "success",
"rejected", "timeout", "cancelled", "invalid", "unavailable", "internal"."""

DURATION_BUCKETS_NS: tuple[int, ...]
"""Upper bounds (inclusive) of the duration histogram buckets in ns, 50 µs to 10 s; each
histogram has one more bucket, +Inf."""

LOOKUP_BUCKETS_NS: tuple[int, ...]
"""Upper bounds (inclusive) of the feature lookup latency buckets in ns, 1 µs to 1 s; each
histogram has one more bucket, +Inf."""

SHADOW_DIFFERENCE_BOUNDS: tuple[float, ...]
"""Upper bounds (inclusive) of the shadow comparison histogram: the largest absolute difference
between a shadow's answer and the served one, 0 (identical) to 100; one more bucket, +Inf
(also for answers that cannot be compared value by value)."""

@final
class QueuePolicy:
    """Triton `ModelQueuePolicy` of one priority level."""

    def __new__(
        cls,
        timeout_action: str = "REJECT",
        default_timeout_us: int = 0,
        allow_timeout_override: bool = False,
        max_queue_size: int = 0,
    ) -> QueuePolicy:
        """`timeout_action`: "REJECT" removes a request whose queue timeout expired (it comes
        back in `Batch.rejected`); "DELAY" keeps it but runs it after every unexpired request.
        `default_timeout_us`: the level's queue timeout, 0 for none. `allow_timeout_override`:
        a request's own non-zero `timeout_us` replaces the default. `max_queue_size`: most
        requests queued at the level, 0 for unbounded (a full level raises
        ResourceExhaustedError at submit). InvalidInputError for another action name.
        """

    @property
    def timeout_action(self) -> Literal["REJECT", "DELAY"]:
        """The action on timeout."""

    @property
    def default_timeout_us(self) -> int:
        """Queue timeout in microseconds (0: none)."""

    @property
    def allow_timeout_override(self) -> bool:
        """Whether a request's own timeout replaces the default."""

    @property
    def max_queue_size(self) -> int:
        """Most requests queued at the level (0: unbounded)."""

@final
class Batch:
    """Requests to execute together, from `BatchQueue.next_batch`. Tokens are typed `Any`: they
    are whatever the caller submitted (asyncio futures in the server).

    A batch may hold no requests but only `rejected` tokens, so that their callers are failed
    promptly (with DEADLINE_EXCEEDED).
    """

    @property
    def tokens(self) -> list[Any]:
        """Each request's token (the object given to `submit`), in batch order."""

    @property
    def request_ids(self) -> list[int]:
        """Each request's id (as returned by `submit`)."""

    @property
    def request_rows(self) -> list[int]:
        """Each request's rows in dim 0 (1 each when max_batch_size is 0)."""

    @property
    def rejected(self) -> list[Any]:
        """Tokens of requests whose deadline passed in the queue (REJECT policy, or a caller
        deadline); fail them with DEADLINE_EXCEEDED."""

    @property
    def rejected_ids(self) -> list[int]:
        """Each rejected request's id."""

    @property
    def queue_ns(self) -> list[int]:
        """Nanoseconds each request waited in the queue."""

    @property
    def size(self) -> int:
        """Total rows: the sum of `request_rows` (1 when max_batch_size is 0, 0 when the batch
        only carries rejected tokens)."""

    def input(self, index: int) -> tuple[bytes | npt.NDArray[np.uint8], tuple[int, ...]]:
        """Input `index` (model input order): a buffer for `numpy.frombuffer` and the batch
        shape (dim 0 = `size` when batching, else the request's own shape).

        With one request the buffer is that request's own `bytes` object (no copy); with more,
        a 1-D uint8 array that owns the concatenation made in Rust (no further copy). The same
        objects are returned on every call. IndexError for an index out of range.
        """

    def split(self, output: npt.NDArray[Any]) -> list[bytes]:
        """Splits a numeric, C-contiguous model output into one `bytes` per request holding
        its rows (in batch order). When batching, dim 0 must equal `size`; without batching the
        single request gets the whole output. Raises InternalError on a dim 0 mismatch, a
        non-contiguous array, or an object (BYTES) array, which must be split element-wise
        with `encode_bytes_tensor`.
        """

    def __len__(self) -> int:
        """Number of requests in the batch (not counting rejected ones)."""

@final
class BatchQueue:
    """One model's dynamic-batching queue (Triton `dynamic_batching` semantics).

    The transport calls `submit`; executor threads (one per model instance) call `next_batch`,
    which waits, forms the batch and concatenates its inputs with the GIL released.
    """

    def __new__(
        cls,
        model: str,
        max_batch_size: int,
        *,
        preferred_batch_sizes: Sequence[int] = (),
        max_queue_delay_us: int = 0,
        priority_levels: int = 0,
        default_priority_level: int = 0,
        default_policy: QueuePolicy | None = None,
        priority_policies: Mapping[int, QueuePolicy] | None = None,
        preserve_ordering: bool = False,
    ) -> BatchQueue:
        """`max_batch_size` 0: the model does not batch, every request runs alone with its shape
        as given. Otherwise dim 0 of every input is the batch dim and a batch holds at most
        `max_batch_size` rows. A batch goes as soon as it is full or reaches one of
        `preferred_batch_sizes`; otherwise once its oldest request has waited
        `max_queue_delay_us` (0: at once). `priority_levels` 0 or 1 means one level; level 1
        is the highest, and requests with priority 0 get `default_priority_level`.
        `priority_policies` overrides `default_policy` per level. `preserve_ordering`: answers
        go back in the order requests were queued (kept by the executor that delivers them).

        InvalidInputError for a configuration Triton rejects: a preferred size outside
        1..max_batch_size, a default level or policy level outside 1..priority_levels, or a
        negative number.
        """

    def submit(
        self,
        inputs: Sequence[bytes],
        shapes: Sequence[Sequence[int]],
        token: object,
        priority: int = 0,
        timeout_us: int = 0,
        deadline_s: float | None = None,
    ) -> int:
        """Queues a request and returns its id; ids count accepted requests from 1, in the
        order they were queued. The bytes objects are kept (not copied) and read later without
        the GIL. `priority` and `timeout_us` (µs) are the request's own parameters as sent
        (0: none), read as Triton does: priority 0 or above `priority_levels` means the default
        level, 1 is the highest; the timeout applies only where the level's policy allows an
        override, and only to shorten a non-zero default timeout. `deadline_s`: seconds from
        now (the gRPC `time_remaining()`); the earliest of it and the timeout applies.

        Raises InvalidInputError (inputs/shapes count mismatch, negative dims, a missing or
        inconsistent batch dim, dim 0 outside 1..max_batch_size), ResourceExhaustedError (the
        level's max_queue_size reached), UnavailableError (closed). TypeError if an input is
        not `bytes`; OverflowError for a negative priority or timeout.
        """

    def next_batch(self, timeout_s: float) -> Batch | None:
        """Waits up to `timeout_s` seconds (GIL released) for the next batch; None on timeout.
        Raises UnavailableError once the queue is closed and empty (with `drain`, only after
        every queued request was handed out).
        """

    def cancel(self, request_id: int) -> bool:
        """Removes a still-queued request; False if it is already in a batch or unknown. The
        executor's `cancel` calls this and also takes the request out of a preserve_ordering
        model's answer order: call that one, or later answers wait for this request forever."""

    def close(self, drain: bool) -> list[Any]:
        """Stops accepting requests and wakes blocked `next_batch` callers. `drain=True`:
        queued requests still run, returns []. `drain=False`: returns the tokens of every queued
        request (fail them with UNAVAILABLE); also after an earlier `close(True)`.
        """

    def record_execution(
        self,
        batch_size: int,
        compute_input_ns: int,
        compute_infer_ns: int,
        compute_output_ns: int,
    ) -> None:
        """Records one executed batch of `batch_size` rows and the time of its three phases."""

    def record_request(self, outcome: int, duration_ns: int) -> None:
        """Records one finished request: `outcome` is its index in REQUEST_OUTCOMES (ValueError
        if out of range), `duration_ns` its end-to-end time."""

    def statistics(self) -> dict[str, Any]:
        """Triton ModelStatistics counters, read lock-free. Keys:

        - "model": str
        - "inference_count": int, rows executed (sum of recorded batch sizes)
        - "execution_count": int, batches executed
        - "last_inference_ms": int, ms since the Unix epoch of the last execution (0: never)
        - "pending": int, requests queued now
        - "success", "fail": tuple[int, int], (count, total ns) of `record_request`
        - "queue": tuple[int, int], requests that left the queue in a batch, total ns queued
        - "compute_input", "compute_infer", "compute_output": tuple[int, int], (executions,
          total ns) of `record_execution`
        - "batch_stats": dict[int, dict[str, tuple[int, int]]], per executed batch size:
          {"compute_input": (executions, ns), "compute_infer": ..., "compute_output": ...}
        - "outcomes": dict[str, int], finished requests per REQUEST_OUTCOMES name
        - "histograms": dict[str, tuple[list[int], int]], for "request", "queue",
          "compute_input", "compute_infer", "compute_output": (events per bucket of
          DURATION_BUCKETS_NS, not cumulative, with a last +Inf bucket; total ns)
        """

    @property
    def pending(self) -> int:
        """Requests waiting in the queue."""

    @property
    def closed(self) -> bool:
        """Whether `close` was called."""

    @property
    def preserve_ordering(self) -> bool:
        """Whether answers must go back in the order requests were queued (the executor that
        delivers them keeps it)."""

    @property
    def model(self) -> str:
        """The model name."""

@final
class InOrder:
    """The preserve_ordering release gate (the native engine's, in Rust) for answers that are
    Python objects: each goes only once every request queued before it (lower queue id) has
    ended. Ids count from 1, as `BatchQueue.submit` gives them; each must end exactly once."""

    def __new__(cls) -> InOrder: ...
    def finish(self, ids: Sequence[int], answers: Sequence[Any]) -> list[Any]:
        """Requests `ids` ended with `answers`: the answers that may go now, in queue order.
        ValueError when the lengths differ."""

    def withdraw(self, request_id: int) -> list[Any]:
        """The request left the queue unanswered (cancelled): the answers that may go now."""

    def open(self) -> list[Any]:
        """Stops holding answers back: every held answer, in queue order; later ones go at
        once."""

    @property
    def held(self) -> int:
        """Answers waiting for their turn."""

@final
class OrtModel:
    """An ONNX model version loaded through onnxruntime's C API (the native engine), one
    session per instance."""

    @staticmethod
    def load(
        library: str | os.PathLike[str],
        path: str | os.PathLike[str],
        *,
        instances: int = 1,
        accelerator: str = "cpu",
        gpus: Sequence[int] | None = None,
        allow_cpu_fallback: bool = False,
        tensorrt_fp16: bool = False,
        tensorrt_cache_path: str | None = None,
        tensorrt_max_workspace_bytes: int | None = None,
        cudnn_conv_algo_search: str = "exhaustive",
        intra_op_threads: int = 1,
        inter_op_threads: int = 1,
        parallel_execution: bool = False,
        allow_spinning: bool = False,
        optimization: str = "all",
        optimized_model_path: str | None = None,
    ) -> OrtModel:
        """Loads `path` with the onnxruntime library file `library` (without the GIL):
        `instances` sessions on the CPU, or with `accelerator` "cuda" or "tensorrt" one session
        per entry of `gpus` (the GPU id of each instance). `optimization`: disable_all, basic,
        extended or all. Raises NotImplementedError where the native engine cannot run the
        model here (the library cannot be loaded, or a graph input or output is not a tensor of
        a v2 datatype: string tensors are BYTES),
        UnavailableError when a requested GPU provider cannot start (unless
        `allow_cpu_fallback`), InternalError when onnxruntime refuses the file."""

    @property
    def inputs(self) -> list[tuple[str, str, tuple[int | None, ...]]]:
        """Graph inputs: (name, ONNX type such as "tensor(float)", dims; None if dynamic)."""

    @property
    def outputs(self) -> list[tuple[str, str, tuple[int | None, ...]]]:
        """Graph outputs, as `inputs`."""

    @property
    def instances(self) -> int:
        """Sessions loaded."""

    @property
    def providers(self) -> list[str]:
        """The execution provider running each instance, as onnxruntime names it."""

    @property
    def pinned_io(self) -> bool:
        """Whether every GPU instance moves its batches through pinned host memory."""

@final
class SequencePlan:
    """A stateful model's sequence batcher settings (Triton's sequence_batching)."""

    def __new__(
        cls,
        *,
        model: str,
        slots: int,
        max_idle_us: int,
        max_held: int,
        controls: Sequence[tuple[str, bytes, bytes, str]],
        states: Sequence[tuple[int, bytes, Sequence[int]]],
        batches: bool,
    ) -> SequencePlan:
        """`model`: the model's name, for messages; `slots`: sequences running at once;
        `max_idle_us`: the idle timeout; `max_held`: requests held waiting for a slot or their
        turn (0: no bound); `controls`:
        per control input in the executor's order after the client's inputs, (kind, false
        value, true value, CORRID datatype): kind START, END or READY with one element's
        bytes for false and true, or CORRID with its datatype (UINT64, INT64, UINT32, INT32,
        BYTES); `states`: per state input after the controls, (executor output index of the
        next state, one row's initial bytes, dims without the batch dim)."""

@final
class OrtExecutor:
    """Runs one model version on the native engine: executor threads (started by `start`) take
    batches from `queue` without the GIL and push the answers; the event loop watches
    `fileno()` and calls `settle()`, which resolves each request's future with (buffers,
    shapes) or DeadlineExceededError / InternalError."""

    def __new__(
        cls,
        name: str,
        model: OrtModel,
        queue: BatchQueue,
        *,
        input_names: Sequence[str],
        output_names: Sequence[str],
        batches: bool,
        input_reshapes: Sequence[tuple[Sequence[int], Sequence[int]] | None],
        output_reshapes: Sequence[tuple[Sequence[int], Sequence[int]] | None],
        features: FeatureStore | None = None,
        sequence: SequencePlan | None = None,
    ) -> OrtExecutor:
        """`input_names`/`output_names`: graph tensors in the order requests carry them;
        `input_reshapes`: per input (client dims, model dims) where config.pbtxt reshapes it;
        `output_reshapes`: per output (model dims, client dims) where reshaped; each -1 takes
        the size of the other side's -1 in the same order (Triton's mapping).
        With `features` (a model with looked-up features), the queue holds the plan's
        request inputs, `input_names` are the plan's model inputs, and each batch is gathered
        from the store's current snapshot; a row a reject-policy view cannot serve answers its
        request with FeatureNotFoundError. With `sequence` (a stateful model), requests reach
        the queue through the version's sequence batcher, which appends the control and
        state inputs to the client's."""

    def track_drift(self, tracker: DriftTracker) -> None:
        """Has every batch the executor threads run counted by `tracker` (over the model
        inputs in this executor's order, then the outputs). Once, before `start`;
        RuntimeError otherwise."""

    def start(self) -> None:
        """Starts one executor thread per instance (idempotent)."""

    def fileno(self) -> int:
        """The pipe that is readable while answers wait for `settle`."""

    def settle(self) -> int:
        """Resolves every waiting request's future (skipping futures already done); returns
        how many answers were waiting."""

    def cancel(self, request_id: int) -> bool:
        """Takes a still-queued request out of the queue and, for a preserve_ordering model,
        out of the answer order (no later answer waits for it). False if it already left the
        queue: its answer comes as usual."""

    def stop_ordering(self) -> None:
        """Stops holding answers back for their turn (preserve_ordering): for unload, once
        the queue is closed and nothing is left to wait for."""

    def close_sequences(self) -> None:
        """A stateful model's sequence batcher takes no new request; its held ones end
        unanswered (unload). A no-op for other models."""

    def run(
        self, inputs: Sequence[bytes], shapes: Sequence[Sequence[int]], instance: int = 0
    ) -> tuple[list[bytes], list[list[int]]]:
        """One call on `instance` on this thread without the GIL (warm-up, from a loading
        thread): (buffers, shapes) per output; `inputs`: a bytes object per input.
        InternalError when onnxruntime fails; InvalidInputError for an instance it lacks."""

    def join(self, timeout_s: float) -> bool:
        """Waits (without the GIL) for the executor threads to stop after the queue closed;
        whether they all did."""

@final
class NativeRoute:
    """A model version the native front end answers without Python: the requests its fast path
    takes are queued for `executor`'s threads, which answer them directly."""

    def __new__(
        cls,
        executor: OrtExecutor,
        model_name: str,
        model_version: str,
        *,
        inputs: Sequence[tuple[str, str, Sequence[int], int]],
        max_batch_size: int,
        outputs: Sequence[tuple[str, str]],
        features: FeatureStore | None = None,
    ) -> NativeRoute:
        """The route to version `model_version` (its label) of `model_name`. `inputs`: (name,
        datatype, client shape with -1 for any size, bytes per element or 0 for BYTES) in
        signature order; `outputs`: (name, datatype). The fast path takes a request with no
        parameters but Triton's `priority` and `timeout` (integers) and perf_analyzer's
        `triton_enable_empty_final_response`, raw inputs in signature order with valid shapes
        and sizes (BYTES: well-formed elements of UTF-8 text), and known requested outputs
        without parameters; it forwards anything else, errors included, to the Python server,
        which words them. With `features` whose store has views in Redis (`remote`), each
        request's graph inputs are joined (Redis fetched) before queueing, and `executor` runs
        without features."""
    @staticmethod
    def ensemble(
        stats: BatchQueue,
        model_name: str,
        model_version: str,
        *,
        inputs: Sequence[tuple[str, str, Sequence[int], int]],
        max_batch_size: int,
        outputs: Sequence[tuple[str, str]],
        tensors: Sequence[str],
        input_tensors: Sequence[int],
        output_tensors: Sequence[int],
        steps: Sequence[tuple[str, str, Sequence[tuple[str, int]], Sequence[tuple[str, int]]]],
    ) -> NativeRoute:
        """The route of ensemble `model_name` version `model_version`: requests matching its
        signature (`inputs`, `max_batch_size`, `outputs` as for a model) run `steps` in the
        front end, each queued into its composing model's version as routed at that moment;
        the ensemble's requests are counted in `stats` (a queue nothing is queued into).
        `tensors`: every ensemble tensor's name; `input_tensors`, `output_tensors`: the tensor
        of each input and output; `steps`: (model, version or "", input_map, output_map) with
        tensor indices, each after the steps whose outputs it reads. ValueError for a plan
        that breaks those rules."""
    def holders(self) -> int:
        """Holders of the route besides this object: the front end's route table while the
        route is in it, and each request from its route lookup until its answer (0: drained)."""

@final
class Restrictions:
    """Triton's restricted protocols (`--grpc-restricted-protocol=<protocols>:<key>=<value>`):
    calls of a restricted protocol must carry the header `triton-grpc-protocol-<key>: <value>`,
    else they are refused UNAVAILABLE with Triton's message."""

    def __new__(cls, specs: Sequence[str], *, http: bool = False) -> Restrictions:
        """Parses the flag values; ValueError naming the value and what is wrong (an unknown
        protocol, a missing `:` or `=`, a key that is not a header name, a protocol twice).
        `http`: `--http-restricted-api`'s values, whose header is `<key>` itself and whose
        refusals are 403 with Triton's HTTP words."""

    def refusal(self, path: str, metadata: Sequence[tuple[str, str]]) -> str | None:
        """Why a call of `path` ("/package.Service/Method") with this metadata is refused, or
        None when it may go on."""

    def is_empty(self) -> bool:
        """Whether nothing is restricted."""

@final
class Frontend:
    """The native gRPC front end: HTTP/2 in Rust; answers ModelInfer / ModelStreamInfer for
    routed model versions and forwards every other call to the gRPC server on a Unix socket."""

    @staticmethod
    def start(
        address: str,
        backend: str,
        *,
        http_address: str | None = None,
        max_message_bytes: int,
        threads: int = 1,
        max_connections: int,
        max_concurrent_streams: int,
        handshake_timeout_ms: int,
        idle_timeout_ms: int,
        keepalive_time_ms: int,
        keepalive_timeout_ms: int,
        stream_window: int,
        restrictions: Restrictions | None = None,
        http_restrictions: Restrictions | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        tls_root_cert: str | None = None,
        http_tls: bool = False,
    ) -> Frontend:
        """Listens on `address` ("host:port", port 0 for any free one); OSError if it cannot
        bind. `backend`: the Unix socket of the server that answers everything else;
        `http_address`: where to serve the v2 REST protocol too (None: nowhere). The
        connection bounds are `ConnectionOptions`' (ms; 0 turns the idle timeout and
        keep-alive off); `stream_window`: messages of one stream in flight at once;
        `restrictions`: protocols whose calls must carry a header, checked before any call
        is answered or forwarded; `http_restrictions` (`Restrictions(..., http=True)`): the
        same for the REST endpoints. With `tls_cert` and `tls_key` (PEM files) it speaks TLS
        only, and with `tls_root_cert` it requires client certificates that chain to it
        (mutual TLS); ValueError naming the flag and the file when they cannot be used.
        `http_tls`: the REST port speaks TLS too, with the same certificates (ValueError
        without `tls_cert` and `tls_key`)."""

    @property
    def port(self) -> int:
        """The port it listens on."""

    @property
    def http_port(self) -> int:
        """The port the v2 REST protocol is served on (0: none)."""

    def set_routes(
        self,
        models: Sequence[
            tuple[
                str,
                Sequence[tuple[str, str, str, NativeRoute]],
                Sequence[tuple[int, str, str, NativeRoute]],
                Sequence[tuple[int, str, NativeRoute]],
            ]
        ],
    ) -> None:
        """Replaces the routing table: per model (name, named, split, shadows). `named`: (a
        version number or alias as requests name it, the alias counted or "", the version,
        its route); `split`: where requests without a version go, (weight, alias or "",
        version, route), drawn per request by weight (empty: forwarded); `shadows`: (percent,
        version, route), versions that get a copy of that share of those requests."""

    def routed_counts(self) -> list[tuple[str, str, str, int]]:
        """Requests taken natively: (model, alias or "", version, requests), since start."""

    def shadow_counts(self) -> list[tuple[str, str, int, int, int, list[int], int]]:
        """Per shadow version: (model, version, copies sent, failed, mismatched, compared per
        SHADOW_DIFFERENCE_BOUNDS bucket with a last unbounded one (not cumulative), sum of the
        largest absolute differences in millionths)."""

    def rpc_counts(self) -> list[tuple[str, str, str, int]]:
        """Calls answered natively: (method, rpc type, status code name, calls)."""

    def reload_tls(self) -> bool:
        """Reads the TLS files again for new connections (open ones keep theirs); False
        without TLS; ValueError, the old certificates kept, when they cannot be used."""

    def stop(self, grace_s: float) -> None:
        """Stops accepting calls; waits up to `grace_s` for open connections to finish."""

@final
class FeaturePlan:
    """A model's feature declaration compiled against its graph inputs."""

    def __new__(
        cls,
        declaration: Mapping[str, Any],
        model_inputs: Sequence[tuple[str, str, Sequence[int]]],
    ) -> FeaturePlan:
        """`declaration`: {"request_inputs": [{"name", "datatype", "columns"}], "views":
        [{"name", "key": [names], "features": [{"name", "datatype", "default"}], "max_age_s",
        "on_missing": "default" | "reject"}], "assembly": [{"model_input", "segments":
        [{"request_input": name} | {"view": name}]}]}; `model_inputs`: the graph inputs as
        (name, datatype, dims without the batch dim). InvalidInputError says what to change."""

    @property
    def request_inputs(self) -> list[tuple[str, str, int]]:
        """What clients send: (name, datatype, columns), in queue order."""

    @property
    def model_inputs(self) -> list[str]:
        """The graph inputs the join writes, in the executor's order."""

    @property
    def views(self) -> list[str]:
        """The feature views, in plan order."""

    def view_columns(self, view: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]], bool]:
        """A view's key parts and features as (name, datatype), and whether it has a max age."""

    def stats(self) -> dict[str, Any]:
        """{"views": {view: {"lookups", "hits", "misses", "stale", "unavailable", "rejected",
        "latency": (counts per bucket of LOOKUP_BUCKETS_NS with a last +Inf one, total ns)}},
        "gathers", "rows", "gather_ns"}. A view's latency has one observation per gather call:
        an embedded view's gather time, a Redis view's fetch (round trip) time."""

@final
class FeatureTable:
    """One view's snapshot, built by `FeatureStore.build`, installed once."""

    @property
    def rows(self) -> int: ...
    @property
    def memory_bytes(self) -> int: ...
    @property
    def duplicate_keys(self) -> int: ...

@final
class FeatureStore:
    """The embedded feature store of one model version: one table per view, swapped
    atomically."""

    def __new__(cls, plan: FeaturePlan, redis: Mapping[str, Any] | None = None) -> FeatureStore:
        """An empty store for `plan`'s views. `redis`: {url, project, timeout_ms,
        serialization_version, views: {view: {name?, features?}}}: those views are read from
        Redis in Feast's layout by the native route, per request."""

    @property
    def remote(self) -> bool:
        """Whether some views are read from Redis (each request is then joined before it is
        queued: by the native route, or by `join` for the Python server)."""

    def join(self, request: Sequence[bytes], rows: int) -> tuple[list[bytes], list[list[int]]]:
        """The graph inputs (buffers and shapes, [rows, dims...]) of one request whose request
        inputs' raw buffers are `request` (the plan's order), joined as the native front end
        joins them: the same keys, defaults, max ages and store-down rules, the same counters,
        through a Redis connection of the Python server's own. Blocks without the GIL up to
        about the store's timeout: call it from a worker thread. FeatureNotFoundError when a
        REJECT view cannot serve a row (the message names the key and the view);
        InvalidInputError for a store without Redis views."""

    def redis_stats(self) -> dict[str, Any] | None:
        """The Redis store's counters (calls, round_trips, rows, found, missing, unavailable,
        timeouts, errors, connection_errors, protocol_errors, bad_rows, null_values: ints) and state
        ("connected": whether Redis answered the last call, None before the first;
        "last_answer_us": int | None; "last_failure": {"kind": "timeout" | "connection" |
        "protocol", "message", "at_us"} | None), both front ends' connections together; None
        without Redis views."""

    def build(
        self,
        view: str,
        keys: Mapping[str, Any],
        features: Mapping[str, npt.NDArray[Any]],
        event_times_us: npt.NDArray[np.int64] | None = None,
    ) -> FeatureTable:
        """Builds `view`'s table (without the GIL): `keys` by key part (int64 arrays, or
        sequences of bytes / str for BYTES parts), `features` by name (1-D arrays of exactly the
        feature's dtype), event times as int64 Unix microseconds."""

    def install(self, tables: Sequence[FeatureTable]) -> int:
        """Installs `tables` in one atomic swap; returns the generation."""

    def status(self) -> list[dict[str, Any]]:
        """Per view: view, loaded, rows, memory_bytes, values_bytes, duplicate_keys,
        oldest_us, newest_us, generation."""

def feast_write(
    declaration: Mapping[str, Any],
    redis: Mapping[str, Any],
    view: str,
    keys: Mapping[str, Any],
    features: Mapping[str, npt.NDArray[Any]],
    event_times_us: npt.NDArray[np.int64],
    *,
    timeout_s: float = 600.0,
) -> tuple[int, int]:
    """Writes rows of `view` into Redis in Feast's layout, as `feast materialize` does, without
    the GIL, and returns (rows written, rows dropped as duplicate keys: of rows with one key the
    newest by event time is written, the later one on a tie). `declaration`: as `FeaturePlan`
    takes it (request_inputs and views are used); `redis`: as `FeatureStore` takes it (url,
    project, serialization_version, and `views`, which must name `view`). `keys` and
    `features` as `FeatureStore.build` takes them; `event_times_us`: int64 Unix microseconds,
    one per row. The whole write, connecting included, must end within `timeout_s`.
    InvalidInputError: the rows do not fit the view; UnavailableError: Redis refused or cannot
    be reached; DeadlineExceededError: it did not finish in time."""

def drift_numeric_profile(name: str, values: npt.NDArray[np.float64], bins: int) -> str:
    """The profile (JSON) of numeric column `name`: at most `bins` bins with edges at the
    quantiles of the finite `values` (numpy's "linear" method, equal edges merged), their
    counts, NaN/inf counts apart, mean, std, min and max. InvalidInputError: no finite value,
    0 bins."""

def drift_categorical_profile(values: npt.NDArray[np.int64], top_k: int) -> str:
    """The profile (JSON) of a categorical column: the `top_k` most frequent `values` (ties:
    the smaller first) with their counts, the rest counted as "other"."""

@final
class DriftTracker:
    """A model version's streaming drift counts: the executor threads count every executed
    batch (see OrtExecutor.track_drift); reports judge windows of the counts against the
    reference profiles, in Rust, with the GIL released."""

    def __new__(
        cls,
        columns: Sequence[tuple[str, int, int, str, str]],
        datatypes: Sequence[str],
        *,
        instances: int,
        window_rows: int | None = None,
        window_seconds: float | None = None,
        sample_every: int = 1,
    ) -> DriftTracker:
        """`columns`: per monitored column (name, tensor index, column on the feature axis,
        v2 datatype, profile JSON); `datatypes`: every tensor the executor shows it (model
        inputs, then outputs); exactly one of `window_rows`, `window_seconds`.
        InvalidInputError saying what does not fit."""

    @property
    def columns(self) -> list[str]:
        """The monitored columns' names, in order."""

    @property
    def errors(self) -> int:
        """Batches the tracker refused, and executor threads left without a recorder."""

    def profiles(self) -> str:
        """The columns' profiles, a JSON list in column order."""

    def report(self, thresholds: str) -> str:
        """JSON: profile_id, errors, and the windows cumulative, current and last_closed
        (null until one closed), each with rows, batches, counts and report (columns with
        statistics, verdict and flagged_by; judged, warning, drift, status).
        `thresholds`: JSON of the fields to override (psi_warning, psi_drift,
        jensen_shannon, wasserstein, kolmogorov_smirnov, chi_squared_p_value, min_rows,
        drift_share, warning_share)."""

    def export(self, thresholds: str, top: int) -> str:
        """JSON for the metrics snapshot: profile_id, columns_total, top (the `top` column
        indices by highest PSI in any window, in rank order) and windows (cumulative,
        current, last_closed once one closed), each with rows, batches, status, judged,
        warning, drift, and for the top columns their statistics (columns) and slot counts
        (counts: bins, then NaN, -inf, +inf for numeric columns)."""

    def reset(self) -> None:
        """Restarts the cumulative and current windows."""

def shadow_difference(served: bytes, copy: bytes) -> float:
    """The largest absolute difference between two serialized ModelInferResponses' outputs (a
    shadow's answer against the served one): 0.0 when identical, inf when they cannot be
    compared value by value (other outputs, shapes or datatypes; BYTES that differ; a NaN or
    infinity on one side only)."""
