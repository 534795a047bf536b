"""The Rust extension through its Python API: BYTES codec errors, byte sizes, and the batch
queue's contract with the executor (zero-copy single requests, concat/split, policies, close)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from ferroserve import _core


def test_errors_form_one_hierarchy() -> None:
    for error in (
        _core.InvalidInputError,
        _core.ModelNotFoundError,
        _core.UnavailableError,
        _core.ResourceExhaustedError,
        _core.DeadlineExceededError,
        _core.RequestCancelledError,
        _core.InternalError,
    ):
        assert issubclass(error, _core.FerroserveError)


def test_bytes_round_trip_with_str_bytes_and_bytearray() -> None:
    raw = _core.encode_bytes_tensor(np.array([b"ab", "h\u00e9", bytearray(b"x")], dtype=object))
    assert raw == b"\x02\x00\x00\x00ab\x03\x00\x00\x00h\xc3\xa9\x01\x00\x00\x00x"
    assert list(_core.decode_bytes_tensor(raw, 3, "t")) == [b"ab", "h\u00e9".encode(), b"x"]
    assert list(_core.decode_bytes_tensor(raw, 3, "t", utf8=True)) == ["ab", "h\u00e9", "x"]


@pytest.mark.parametrize(
    ("mutate", "count", "message"),
    [
        (lambda raw: raw[:-1], 2, "element 1 claims 2 bytes but only 1 remain"),
        (lambda raw: raw[:6] + b"\x01", 2, "truncated length prefix at element 1"),
        (lambda raw: raw, 3, "count mismatch: expected 3 elements, got 2"),
        (lambda raw: raw + b"\x01", 2, "1 trailing bytes"),
    ],
)
def test_malformed_bytes_name_the_input_and_element(mutate, count, message) -> None:  # type: ignore[no-untyped-def]
    raw = _core.encode_bytes_tensor(np.array([b"ab", b"cd"], dtype=object))
    with pytest.raises(_core.InvalidInputError, match="input 'text'") as caught:
        _core.validate_bytes_tensor(mutate(raw), count, "text")
    assert message in str(caught.value)


def test_non_utf8_is_rejected_only_when_text_is_required() -> None:
    raw = _core.encode_bytes_tensor(np.array([b"ok", b"\xff"], dtype=object))
    _core.validate_bytes_tensor(raw, 2, "t")
    with pytest.raises(_core.InvalidInputError, match="element 1 is not valid UTF-8"):
        _core.validate_bytes_tensor(raw, 2, "t", utf8=True)


def test_expected_byte_size_checks_datatype_dims_and_overflow() -> None:
    assert _core.expected_byte_size("FP32", [2, 3]) == 24
    for datatype, shape in (("FP33", [1]), ("FP32", [-1]), ("BYTES", [1]), ("FP64", [2**62, 4])):
        with pytest.raises(_core.InvalidInputError):
            _core.expected_byte_size(datatype, shape)


def _rows(value: float, rows: int = 1) -> bytes:
    return np.full((rows, 3), value, np.float32).tobytes()


def test_single_request_batch_hands_back_the_request_buffer() -> None:
    queue = _core.BatchQueue("m", 8)
    data = _rows(1.0)
    queue.submit([data], [[1, 3]], "only")
    batch = queue.next_batch(1.0)
    assert batch is not None and batch.tokens == ["only"]
    buffer, shape = batch.input(0)
    assert buffer is data and shape == (1, 3)


def test_concat_then_split_returns_each_request_its_rows() -> None:
    queue = _core.BatchQueue("m", 8, preferred_batch_sizes=[4], max_queue_delay_us=1_000_000)
    for i, rows in enumerate((1, 2, 1)):
        queue.submit([_rows(i, rows)], [[rows, 3]], i)
    batch = queue.next_batch(1.0)
    assert batch is not None and batch.tokens == [0, 1, 2] and batch.request_rows == [1, 2, 1]
    buffer, shape = batch.input(0)
    stacked = np.frombuffer(buffer, np.float32).reshape(shape)
    assert shape == (4, 3) and stacked[:, 0].tolist() == [0, 1, 1, 2]
    pieces = batch.split(np.arange(8, dtype=np.float32).reshape(4, 2))
    assert [np.frombuffer(p, np.float32).tolist() for p in pieces] == [[0, 1], [2, 3, 4, 5], [6, 7]]


def test_full_queue_and_closed_queue_raise_the_right_errors() -> None:
    policy = _core.QueuePolicy(max_queue_size=1)
    queue = _core.BatchQueue("m", 8, max_queue_delay_us=10_000_000, default_policy=policy)
    queue.submit([_rows(0)], [[1, 3]], "a")
    with pytest.raises(_core.ResourceExhaustedError):
        queue.submit([_rows(1)], [[1, 3]], "b")
    assert queue.close(False) == ["a"]
    with pytest.raises(_core.UnavailableError):
        queue.submit([_rows(2)], [[1, 3]], "c")
    with pytest.raises(_core.UnavailableError):
        queue.next_batch(0.01)


def test_the_queue_reads_priority_and_timeout_as_triton_does() -> None:
    """The Python path hands the parameters over as sent; the queue's rule (the one the native
    path uses) maps priority 0 or beyond the levels to the default level, and lets a timeout
    only shorten a non-zero default."""
    policy = _core.QueuePolicy(default_timeout_us=60_000_000, allow_timeout_override=True)
    queue = _core.BatchQueue(
        "m",
        4,  # the four requests that do not time out fill a batch: it goes at once
        max_queue_delay_us=10_000_000,
        priority_levels=2,
        default_priority_level=2,
        default_policy=policy,
    )
    for token, priority in (("beyond", 2**64 - 1), ("default", 0), ("high", 1)):
        queue.submit([_rows(0)], [[1, 3]], token, priority=priority)
    hasty = queue.submit([_rows(0)], [[1, 3]], "hasty", priority=1, timeout_us=1)
    queue.submit([_rows(0)], [[1, 3]], "patient", priority=1, timeout_us=120_000_000)
    time.sleep(0.01)
    batch = queue.next_batch(0.0)
    assert batch is not None
    assert batch.rejected == ["hasty"] and batch.rejected_ids == [hasty]
    assert batch.tokens == ["high", "patient", "beyond", "default"]
    with pytest.raises(OverflowError):
        queue.submit([_rows(0)], [[1, 3]], "negative", priority=-1)
    assert not queue.preserve_ordering
    assert _core.BatchQueue("m", 8, preserve_ordering=True).preserve_ordering


def test_in_order_releases_answers_in_queue_order() -> None:
    gate = _core.InOrder()
    assert gate.finish([3, 2], ["c", "b"]) == []
    assert gate.held == 2
    assert gate.withdraw(1) == ["b", "c"]
    assert gate.finish([5], ["e"]) == []
    assert gate.open() == ["e"]
    assert gate.finish([4], ["d"]) == ["d"]
    with pytest.raises(ValueError, match="2 ids for 1 answers"):
        gate.finish([6, 7], ["f"])


def test_drain_lets_concurrent_executors_finish_every_request() -> None:
    queue = _core.BatchQueue("m", 4)
    seen: list[int] = []
    lock = threading.Lock()

    def executor() -> None:
        while True:
            try:
                batch = queue.next_batch(0.5)
            except _core.UnavailableError:
                return
            if batch is not None:
                with lock:
                    seen.extend(batch.tokens)  # type: ignore[arg-type]

    threads = [threading.Thread(target=executor) for _ in range(2)]
    for thread in threads:
        thread.start()
    for i in range(200):
        queue.submit([_rows(i)], [[1, 3]], i)
    assert queue.close(True) == []
    for thread in threads:
        thread.join(5)
    assert sorted(seen) == list(range(200))


def test_statistics_count_rows_batches_and_requests() -> None:
    queue = _core.BatchQueue("m", 8)
    queue.record_execution(4, 10, 20, 30)
    queue.record_request(_core.REQUEST_OUTCOMES.index("success"), 100)
    queue.record_request(_core.REQUEST_OUTCOMES.index("internal"), 50)
    stats = queue.statistics()
    assert stats["inference_count"] == 4 and stats["execution_count"] == 1
    assert stats["success"] == (1, 100) and stats["fail"] == (1, 50)
    assert stats["batch_stats"][4]["compute_infer"] == (1, 20)
    assert stats["outcomes"]["success"] == 1 and stats["outcomes"]["internal"] == 1
