"""Tests of amili.chunking: nothing lost, reordered or oversized, and answers map back.

The properties check every chunk against a model computed here independently of the chunker
(envelope sizes, exact bodies, which object opens the next chunk), over random streams of the
four kinds interleaved, payloads with multi-byte UTF-8 and JSON escapes, and random limits.
"""

from __future__ import annotations

import hashlib
import itertools
import pickle
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amili.chunking import (
    BATCHID_MAX_LENGTH,
    BatchObject,
    Chunk,
    ObjectTooLargeError,
    batch_id_with_prefix,
    chunk_objects,
    default_batch_id,
    serialize,
)
from amili.jsonio import dumps, loads
from amili.models import BatchRequest, ObjectName, Payment

NAMES = list(ObjectName)
KEYS = ["batchid", "offline", "creditor", "invoice", "payment", "action"]

# Multi-byte UTF-8 (æøå, €, an emoji) and characters JSON must escape (quote, backslash, \n).
TEXT = st.text(st.sampled_from('abcXYZ æøåÆØÅ€😀"\\\n\t'), max_size=40) | st.text(
    st.characters(codec="utf-8"), max_size=12
)
SPECS = st.lists(st.tuples(st.sampled_from(NAMES), TEXT), max_size=60)
PREFIXES = st.sampled_from(["batch", "2024-01-31", "dag-æøå", 'q"\\'])

fast = settings(deadline=None)


def make_objects(specs: Sequence[tuple[ObjectName, str]]) -> list[BatchObject]:
    """Objects with their input position as source id, so order can be checked."""
    return [serialize(name, {"k": text}, f"row-{i}") for i, (name, text) in enumerate(specs)]


def head(batchid: str, offline: bool) -> bytes:
    return b'{"batchid":' + dumps(batchid) + b',"offline":' + (b"true" if offline else b"false")


def envelope(batchid: str, offline: bool) -> int:
    """Size of a body with no objects, written out by hand."""
    return len(head(batchid, offline) + b',"creditor":[],"invoice":[],"payment":[],"action":[]}')


def prefix_envelope(prefix: str, offline: bool) -> int:
    """Envelope size of chunk numbers below 100000 with ``batch_id_with_prefix(prefix)``."""
    return envelope(f"{prefix}-00000-{'0' * 16}", offline)


def position(source_id: str) -> int:
    return int(source_id.removeprefix("row-"))


def check_chunks(
    objects: Sequence[BatchObject],
    chunks: Sequence[Chunk],
    *,
    max_objects: int,
    max_bytes: int,
    offline: bool,
    prefix: str | None,
) -> None:
    """Every invariant of a chunking of ``objects`` (all of them, in order)."""
    start = 0
    for k, chunk in enumerate(chunks):
        assert chunk.number == k
        count = chunk.object_count()
        assert 1 <= count <= max_objects
        assert len(chunk.body) <= max_bytes

        # Chunks follow input order: chunk k holds exactly the next `count` objects ...
        positions = sorted(position(s) for ids in chunk.source_ids.values() for s in ids)
        assert positions == list(range(start, start + count))
        # ... and each array keeps their relative order.
        for name in NAMES:
            expected = [o.source_id for o in objects[start : start + count] if o.objectname == name]
            assert list(chunk.source_ids[name]) == expected
            for i, source_id in enumerate(expected):
                assert chunk.source_id(name, i) == source_id
                assert chunk.source_id(name.value, i) == source_id
            with pytest.raises(IndexError):
                chunk.source_id(name, len(expected))

        # The body: valid JSON, keys in the documented order, arrays equal to the payloads.
        parsed = loads(chunk.body)
        assert list(parsed) == KEYS
        assert parsed["batchid"] == chunk.batchid
        assert parsed["offline"] is offline
        for name in NAMES:
            payloads = [objects[position(s)].payload for s in chunk.source_ids[name]]
            assert parsed[name.value] == [loads(p) for p in payloads]
        # Byte for byte: the payloads are spliced in unchanged, nothing else is added.
        section = b"".join(
            b',"%s":[' % name.value.encode()
            + b",".join(objects[position(s)].payload for s in chunk.source_ids[name])
            + b"]"
            for name in NAMES
        )
        assert chunk.body == head(chunk.batchid, offline) + section + b"}"
        BatchRequest.model_validate({"batchid": chunk.batchid})  # the id is one the API takes

        # The hash covers the four arrays only; the batchid derives from it.
        assert chunk.content_hash == hashlib.sha256(section).hexdigest()
        if prefix is not None:
            assert chunk.batchid == f"{prefix}-{k:05d}-{chunk.content_hash[:16]}"

        # As full as possible: the object that opens the next chunk would have broken a limit.
        if k + 1 < len(chunks):
            following = objects[start + count]
            comma = 1 if chunk.source_ids[following.objectname] else 0
            would_fit = (
                count < max_objects
                and len(chunk.body) + comma + len(following.payload) <= max_bytes
            )
            assert not would_fit
        start += count
    assert start == len(objects)  # no object lost (nor duplicated: positions are distinct)


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------


@fast
@given(
    specs=SPECS,
    max_objects=st.integers(1, 10),
    spare=st.integers(0, 400),
    offline=st.booleans(),
    prefix=PREFIXES,
)
def test_chunks_keep_every_object_within_limits(
    specs: list[tuple[ObjectName, str]], max_objects: int, spare: int, offline: bool, prefix: str
) -> None:
    objects = make_objects(specs)
    largest = max((len(o.payload) for o in objects), default=2)
    max_bytes = prefix_envelope(prefix, offline) + largest + spare  # every object fits alone
    chunks = list(
        chunk_objects(
            objects,
            max_objects=max_objects,
            max_bytes=max_bytes,
            batch_id=batch_id_with_prefix(prefix),
            offline=offline,
        )
    )
    check_chunks(
        objects,
        chunks,
        max_objects=max_objects,
        max_bytes=max_bytes,
        offline=offline,
        prefix=prefix,
    )


@fast
@given(specs=SPECS, max_objects=st.integers(1, 10), room=st.integers(2, 120))
def test_too_large_object_stops_after_everything_before_it(
    specs: list[tuple[ObjectName, str]], max_objects: int, room: int
) -> None:
    """The chunks before the error hold exactly the objects before the offending one."""
    objects = make_objects(specs)
    max_bytes = prefix_envelope("batch", False) + room
    too_large = next((o for o in objects if len(o.payload) > room), None)
    chunks: list[Chunk] = []
    stream = chunk_objects(objects, max_objects=max_objects, max_bytes=max_bytes)
    if too_large is None:
        chunks.extend(stream)
        before = objects
    else:
        with pytest.raises(ObjectTooLargeError) as caught:
            chunks.extend(stream)
        error = caught.value
        assert error.source_id == too_large.source_id
        assert error.objectname == too_large.objectname
        assert (error.size, error.max_bytes, error.room) == (
            len(too_large.payload),
            max_bytes,
            room,
        )
        before = objects[: position(too_large.source_id)]
    check_chunks(
        before, chunks, max_objects=max_objects, max_bytes=max_bytes, offline=False, prefix="batch"
    )


@fast
@given(specs=SPECS, max_objects=st.integers(1, 10), spare=st.integers(0, 200))
def test_a_content_hasher_is_given_each_chunks_source_ids_and_names_it(
    specs: list[tuple[ObjectName, str]], max_objects: int, spare: int
) -> None:
    """With ``content_hash``, a chunk's hash (and so its batchid) is made from the source ids
    of its objects, per array in body order; the bodies are the same as without it."""
    objects = make_objects(specs)
    max_bytes = prefix_envelope("day", False) + max((len(o.payload) for o in objects), default=2)
    max_bytes += spare
    seen: list[tuple[tuple[str, ...], ...]] = []

    def hasher(ids: Sequence[Sequence[str]]) -> str:
        seen.append(tuple(tuple(array) for array in ids))
        return hashlib.sha256(repr(seen[-1]).encode()).hexdigest()

    def run(content_hash: Callable[[Sequence[Sequence[str]]], str] | None) -> list[Chunk]:
        return list(chunk_objects(iter(objects), max_objects=max_objects, max_bytes=max_bytes,
                                  batch_id=batch_id_with_prefix("day"),
                                  content_hash=content_hash))

    plain, hashed = run(None), run(hasher)
    assert len(seen) == len(hashed) == len(plain)
    for chunk, ids, other in zip(hashed, seen, plain, strict=True):
        assert ids == tuple(chunk.source_ids[name] for name in NAMES)
        assert chunk.content_hash == hashlib.sha256(repr(ids).encode()).hexdigest()
        assert chunk.batchid == f"day-{chunk.number:05d}-{chunk.content_hash[:16]}"
        cut = len(head(chunk.batchid, False))
        assert chunk.body[cut:] == other.body[len(head(other.batchid, False)):]


@fast
@given(specs=SPECS, max_objects=st.integers(1, 10), spare=st.integers(0, 200))
def test_content_hash_is_deterministic_and_independent_of_batchid(
    specs: list[tuple[ObjectName, str]], max_objects: int, spare: int
) -> None:
    objects = make_objects(specs)
    max_bytes = prefix_envelope("aaaa", False) + max((len(o.payload) for o in objects), default=2)
    max_bytes += spare

    def run(prefix: str) -> list[Chunk]:
        return list(
            chunk_objects(
                iter(objects),
                max_objects=max_objects,
                max_bytes=max_bytes,
                batch_id=batch_id_with_prefix(prefix),
            )
        )

    first, again, other = run("aaaa"), run("aaaa"), run("bbbb")  # same length prefixes
    assert first == again
    assert [c.content_hash for c in first] == [c.content_hash for c in other]
    assert [c.source_ids for c in first] == [c.source_ids for c in other]
    assert all(a.batchid != b.batchid for a, b in zip(first, other, strict=True))


@fast
@given(
    specs=st.lists(st.tuples(st.sampled_from(NAMES), TEXT), max_size=30), spare=st.integers(0, 60)
)
def test_batchid_length_growing_with_the_number_is_accounted_per_chunk(
    specs: list[tuple[ObjectName, str]], spare: int
) -> None:
    """Each chunk reserves its own id's length (as for numbers past 99999 with the default)."""
    objects = make_objects(specs)

    def growing(number: int, content_hash: str) -> str:
        return "x" * (number + 1) + content_hash[:4]

    largest = max((len(o.payload) for o in objects), default=2)
    max_bytes = envelope("x" * (len(objects) + 1) + "0000", False) + largest + spare
    chunks = list(chunk_objects(objects, max_objects=3, max_bytes=max_bytes, batch_id=growing))
    check_chunks(objects, chunks, max_objects=3, max_bytes=max_bytes, offline=False, prefix=None)
    for chunk in chunks:
        assert chunk.batchid == growing(chunk.number, chunk.content_hash)


# --------------------------------------------------------------------------------------------
# Examples
# --------------------------------------------------------------------------------------------

ENVELOPE = prefix_envelope("batch", False)


def obj(name: ObjectName, text: str, source_id: str) -> BatchObject:
    return serialize(name, {"k": text}, source_id)


def test_empty_input_gives_no_chunks() -> None:
    assert list(chunk_objects([], max_objects=10, max_bytes=1000)) == []


def test_interleaved_kinds_go_to_their_arrays_in_input_order() -> None:
    objects = [
        obj(ObjectName.CREDITOR, "c1", "C1"),
        obj(ObjectName.INVOICE, "i1", "I1"),
        obj(ObjectName.CREDITOR, "c2", "C2"),
        obj(ObjectName.PAYMENT, "p1", "P1"),
        obj(ObjectName.INVOICE, "i2", "I2"),
    ]
    [chunk] = chunk_objects(objects, max_objects=5, max_bytes=10_000)
    assert loads(chunk.body) == {
        "batchid": chunk.batchid,
        "offline": False,
        "creditor": [{"k": "c1"}, {"k": "c2"}],
        "invoice": [{"k": "i1"}, {"k": "i2"}],
        "payment": [{"k": "p1"}],
        "action": [],
    }
    assert chunk.source_id("creditor", 1) == "C2"
    assert chunk.source_id("invoice", 1) == "I2"
    assert chunk.source_id("payment", 0) == "P1"
    assert chunk.object_count() == 5
    assert chunk.batchid == default_batch_id(0, chunk.content_hash)
    assert chunk.batchid.startswith("batch-00000-")


def test_body_of_exactly_max_bytes_is_allowed() -> None:
    one = obj(ObjectName.INVOICE, "æøå", "a")  # 6 bytes of UTF-8 in the text
    exact = ENVELOPE + len(one.payload)
    [chunk] = chunk_objects([one], max_objects=1, max_bytes=exact)
    assert len(chunk.body) == exact

    with pytest.raises(ObjectTooLargeError) as caught:
        list(chunk_objects([one], max_objects=1, max_bytes=exact - 1))
    message = str(caught.value)
    assert "'a'" in message and f"{len(one.payload)} bytes" in message
    assert f"max_bytes={exact - 1}" in message


def test_same_array_needs_a_comma_other_arrays_do_not() -> None:
    a, b = obj(ObjectName.INVOICE, "a", "a"), obj(ObjectName.INVOICE, "b", "b")
    both = ENVELOPE + len(a.payload) + 1 + len(b.payload)
    [chunk] = chunk_objects([a, b], max_objects=2, max_bytes=both)
    assert len(chunk.body) == both
    split = list(chunk_objects([a, b], max_objects=2, max_bytes=both - 1))
    assert [c.object_count() for c in split] == [1, 1]

    c = obj(ObjectName.ACTION, "b", "c")
    [chunk] = chunk_objects([a, c], max_objects=2, max_bytes=both - 1)
    assert len(chunk.body) == both - 1


def test_max_objects_boundary() -> None:
    objects = [obj(ObjectName.PAYMENT, str(i), str(i)) for i in range(3)]
    assert [c.object_count() for c in chunk_objects(objects, max_objects=3, max_bytes=10**6)] == [3]
    assert [c.object_count() for c in chunk_objects(objects, max_objects=2, max_bytes=10**6)] == [
        2,
        1,
    ]


def test_same_content_in_two_chunks_has_one_hash_but_two_batchids() -> None:
    objects = [obj(ObjectName.INVOICE, "same", "x"), obj(ObjectName.INVOICE, "same", "y")]
    first, second = chunk_objects(objects, max_objects=1, max_bytes=10_000)
    assert first.content_hash == second.content_hash
    assert first.batchid != second.batchid


def test_generator_is_lazy_on_an_infinite_stream() -> None:
    pulled = 0

    def endless() -> Iterator[BatchObject]:
        nonlocal pulled
        for i in itertools.count():
            pulled += 1
            yield obj(NAMES[i % 4], "x" * (i % 7), f"row-{i}")

    stream = chunk_objects(endless(), max_objects=5, max_bytes=ENVELOPE + 40)
    assert pulled == 0  # creating the chunker reads nothing
    first, second = itertools.islice(stream, 2)
    assert (first.number, second.number) == (0, 1)
    # Only one object beyond the two chunks was read: the one that closed the second.
    assert pulled == first.object_count() + second.object_count() + 1


def test_memory_stays_bounded_by_one_chunk() -> None:
    """A long generated stream is never held: peak memory is far below the input's size."""

    def stream() -> Iterator[BatchObject]:
        for i in range(50_000):
            yield BatchObject(NAMES[i % 4], b'{"k":"%s"}' % (b"x" * 100), f"row-{i}")

    tracemalloc.start()
    try:
        total = sum(
            c.object_count() for c in chunk_objects(stream(), max_objects=200, max_bytes=10**6)
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == 50_000
    assert peak < 1_000_000  # the input alone is > 5 MB of payloads


def test_200k_objects_in_a_few_seconds() -> None:
    """A quick throughput check, not a benchmark: prints the time (see it with ``-s``)."""
    objects = [
        BatchObject(NAMES[i % 4], b'{"k":"%d","t":"\xc3\xa6\xc3\xb8\xc3\xa5"}' % i, str(i))
        for i in range(200_000)
    ]
    started = time.perf_counter()
    chunks = list(chunk_objects(objects, max_objects=1000, max_bytes=64_000))
    elapsed = time.perf_counter() - started
    print(f"\n200k objects -> {len(chunks)} chunks in {elapsed:.2f} s")
    assert sum(c.object_count() for c in chunks) == 200_000
    assert all(len(c.body) <= 64_000 for c in chunks)
    assert chunks[-1].source_id("action", len(chunks[-1].source_ids["action"]) - 1) == "199999"


# --------------------------------------------------------------------------------------------
# Argument and input checks
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("max_objects", [0, -1, True, 1.5, "10"])
def test_max_objects_is_checked_eagerly(max_objects: object) -> None:
    with pytest.raises(ValueError, match="max_objects"):
        chunk_objects([], max_objects=max_objects, max_bytes=10_000)  # type: ignore[arg-type]


def test_max_bytes_must_hold_the_envelope_and_one_empty_object() -> None:
    with pytest.raises(ValueError, match=f"envelope of a body is {ENVELOPE} bytes"):
        chunk_objects([], max_objects=1, max_bytes=ENVELOPE + 1)
    with pytest.raises(ValueError, match="max_bytes must be an integer"):
        chunk_objects([], max_objects=1, max_bytes="1MB")  # type: ignore[arg-type]
    empty = serialize("action", {}, "e")
    [chunk] = chunk_objects([empty], max_objects=1, max_bytes=ENVELOPE + 2)
    assert len(chunk.body) == ENVELOPE + 2


def test_offline_must_be_bool() -> None:
    with pytest.raises(TypeError, match="offline"):
        chunk_objects([], max_objects=1, max_bytes=10_000, offline="yes")  # type: ignore[arg-type]


def test_bad_objects_in_the_stream_are_named() -> None:
    bad_name = BatchObject("case", b"{}", "row-7")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"row-7.*'case'"):
        list(chunk_objects([bad_name], max_objects=1, max_bytes=10_000))
    not_bytes = BatchObject(ObjectName.INVOICE, '{"k":1}', "row-8")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="row-8"):
        list(chunk_objects([not_bytes], max_objects=1, max_bytes=10_000))
    not_object = BatchObject(ObjectName.INVOICE, b"[1]", "row-9")
    with pytest.raises(TypeError, match="row-9"):
        list(chunk_objects([not_object], max_objects=1, max_bytes=10_000))


def test_batch_id_factories_are_checked() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        batch_id_with_prefix("")
    longest = "p" * (BATCHID_MAX_LENGTH - 23)
    assert len(batch_id_with_prefix(longest)(0, "f" * 64)) == BATCHID_MAX_LENGTH
    with pytest.raises(ValueError, match="at most 77"):
        batch_id_with_prefix(longest + "p")

    for bad in ("", "y" * (BATCHID_MAX_LENGTH + 1)):
        with pytest.raises(ValueError, match="1 to 100 characters"):
            chunk_objects([], max_objects=1, max_bytes=10_000, batch_id=lambda n, h, b=bad: b)

    def hash_dependent(number: int, content_hash: str) -> str:
        return content_hash.lstrip("0")  # the probe hash is all zeros: length 0 ... then 64

    with pytest.raises(ValueError, match="1 to 100 characters"):
        chunk_objects([], max_objects=1, max_bytes=10_000, batch_id=hash_dependent)

    def shorter_probe(number: int, content_hash: str) -> str:
        return content_hash.lstrip("0") or "z"

    stream = chunk_objects(
        [obj(ObjectName.INVOICE, "a", "a")], max_objects=1, max_bytes=10_000, batch_id=shorter_probe
    )
    with pytest.raises(ValueError, match="must not depend on the hash's value"):
        list(stream)


def test_source_id_lookups_fail_clearly() -> None:
    [chunk] = chunk_objects([obj(ObjectName.INVOICE, "a", "a")], max_objects=1, max_bytes=10_000)
    with pytest.raises(KeyError, match="no object array 'batch'"):
        chunk.source_id("batch", 0)  # the answer's name for an error about the whole batch
    with pytest.raises(IndexError, match=r"out of range for array 'invoice'.*holds 1 object"):
        chunk.source_id("invoice", 1)
    with pytest.raises(IndexError):
        chunk.source_id("invoice", -1)  # not the last object, as list indexing would give
    with pytest.raises(IndexError, match="holds 0 object"):
        chunk.source_id("payment", 0)
    assert "body" not in repr(chunk)  # a multi-megabyte body must not flood logs


def test_object_too_large_error_pickles() -> None:
    error = ObjectTooLargeError("invoice", "row-1", 500, 400, 300)
    again = pickle.loads(pickle.dumps(error))
    assert str(again) == str(error)
    assert (again.source_id, again.size, again.max_bytes) == ("row-1", 500, 400)
    assert isinstance(again, ValueError)


# --------------------------------------------------------------------------------------------
# serialize
# --------------------------------------------------------------------------------------------


def test_serialize_model_and_dict_with_exact_decimals() -> None:
    payment = Payment(
        invoiceId="3fa85f64-5717-4562-b3fc-2c963f66afa6",
        type="DIRECT_PAYMENT",
        amount=Decimal("12345678901234.10"),
        currency="NOK",
        date="2024-01-31",
        uniqueSourcePaymentId="pay-1",
    )
    item = serialize("payment", payment, "pay-1")
    assert item.objectname is ObjectName.PAYMENT
    assert item.source_id == "pay-1"
    assert b'"amount":12345678901234.10' in item.payload
    assert Payment.model_validate(loads(item.payload)) == payment

    assert serialize(ObjectName.ACTION, {"sum": Decimal("0.50")}, "x").payload == b'{"sum":0.50}'


def test_serialize_refuses_the_wrong_model_or_name() -> None:
    payment = Payment.model_construct(invoiceId="x")
    with pytest.raises(TypeError, match="Payment cannot go in the 'invoice' array"):
        serialize(ObjectName.INVOICE, payment, "p")
    with pytest.raises(ValueError, match="'case' is not one of creditor"):
        serialize("case", {}, "p")
    with pytest.raises(TypeError, match="JSON object"):
        serialize("action", [1, 2], "p")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# A header object repeated at the head of every body (one creditor per batch)
# --------------------------------------------------------------------------------------------

HEADER_TEXT = st.text(st.sampled_from('abc æøå"\\'), max_size=30)


def header_obj(text: str) -> BatchObject:
    return serialize(ObjectName.CREDITOR, {"h": text}, "header")


@fast
@given(
    specs=SPECS,
    head=HEADER_TEXT,
    max_objects=st.integers(2, 10),
    spare=st.integers(0, 400),
    first_number=st.integers(0, 3),
    alone=st.booleans(),
)
def test_a_header_heads_every_chunk_and_the_cut_stays_greedy(
    specs: list[tuple[ObjectName, str]], head: str, max_objects: int, spare: int,
    first_number: int, alone: bool,
) -> None:
    objects = make_objects(specs)
    header = header_obj(head)
    largest = max((len(o.payload) for o in objects), default=2)
    # every object fits with the header (and a comma, should it share the header's array)
    max_bytes = prefix_envelope("batch", False) + len(header.payload) + 1 + largest + spare
    chunks = list(chunk_objects(objects, max_objects=max_objects, max_bytes=max_bytes,
                                header=header, header_alone=alone, first_number=first_number))
    if not objects:
        assert [c.object_count() for c in chunks] == ([1] if alone else [])
        return
    start = 0
    for k, chunk in enumerate(chunks):
        assert chunk.number == first_number + k
        assert chunk.batchid == default_batch_id(chunk.number, chunk.content_hash)
        assert chunk.source_ids[ObjectName.CREDITOR][0] == "header"
        count = chunk.object_count()
        assert 2 <= count <= max_objects and len(chunk.body) <= max_bytes
        mine = objects[start:start + count - 1]
        # the same body as the plain cut of [header, *its objects]: one place computes bodies
        [plain] = chunk_objects([header, *mine], max_objects=count, max_bytes=max_bytes,
                                batch_id=lambda n, h, c=chunk: c.batchid)
        assert (plain.body, plain.content_hash) == (chunk.body, chunk.content_hash)
        assert plain.source_ids == chunk.source_ids
        if k + 1 < len(chunks):  # greedy: the next object would have broken a limit
            following = objects[start + count - 1]
            comma = 1 if chunk.source_ids[following.objectname] else 0
            assert (count >= max_objects
                    or len(chunk.body) + comma + len(following.payload) > max_bytes)
        start += count - 1
    assert start == len(objects)  # nothing lost, nothing twice


@fast
@given(specs=SPECS, head=HEADER_TEXT, room=st.integers(4, 80), max_objects=st.integers(2, 6))
def test_objects_too_large_for_any_body_are_handed_back_and_the_rest_still_go(
    specs: list[tuple[ObjectName, str]], head: str, room: int, max_objects: int
) -> None:
    objects = make_objects(specs)
    header = header_obj(head)
    max_bytes = prefix_envelope("batch", False) + len(header.payload) + 1 + room
    refused: list[tuple[str, int]] = []
    chunks = list(chunk_objects(
        objects, max_objects=max_objects, max_bytes=max_bytes, header=header,
        on_too_large=lambda o, e: refused.append((o.source_id, e.size)),
    ))
    too_large = [o for o in objects
                 if len(o.payload) + (o.objectname == ObjectName.CREDITOR) > room + 1]
    assert refused == [(o.source_id, len(o.payload)) for o in too_large]
    sent = [s for c in chunks for name in NAMES for s in c.source_ids[name] if s != "header"]
    assert sorted(sent, key=position) == [o.source_id for o in objects if o not in too_large]
    assert all(len(c.body) <= max_bytes and c.object_count() <= max_objects for c in chunks)


def test_a_header_that_leaves_no_room_is_refused_at_once() -> None:
    header = header_obj("x" * 50)
    fits = prefix_envelope("batch", False) + len(header.payload) + 1 + 2
    assert list(chunk_objects([], max_objects=2, max_bytes=fits, header=header,
                              header_alone=True))
    with pytest.raises(ObjectTooLargeError) as caught:
        chunk_objects([], max_objects=2, max_bytes=fits - 1, header=header)
    assert caught.value.source_id == "header"
    with pytest.raises(ValueError, match="at least 2"):
        chunk_objects([], max_objects=1, max_bytes=10_000, header=header)
    with pytest.raises(ValueError, match="first_number"):
        chunk_objects([], max_objects=2, max_bytes=10_000, first_number=-1)
