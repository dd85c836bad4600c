"""Split a stream of serialized objects into Batch API request bodies.

``POST /webapi/api/Batch`` takes one body of four object arrays, and its answer names each
object by ``(objectname, objectindex)``: the array and the 0-based position in it. A day's
hand-over can be a million invoices, far more than one request should carry, so the objects
are cut into chunks by a maximum object count and a maximum body size in bytes, and every
chunk remembers the caller's source id of each object so an answer maps back to its row.

:func:`chunk_objects` is a generator that holds at most one chunk at a time, and does a
constant amount of work per object: an input of any length streams through in bounded memory.
Objects are serialized once (:func:`serialize`) and their bytes are spliced into the body
unchanged, so the size known while chunking is exactly the size sent.
"""

from __future__ import annotations

import hashlib
import reprlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from pydantic import BaseModel

from amili.jsonio import dumps
from amili.models import OBJECT_MODELS, BatchRequest, ObjectName

__all__ = [
    "BATCHID_MAX_LENGTH",
    "BatchIdFactory",
    "BatchObject",
    "Chunk",
    "ContentHasher",
    "ObjectTooLargeError",
    "TooLargeHandler",
    "batch_id_with_prefix",
    "chunk_objects",
    "default_batch_id",
    "serialize",
]

BatchIdFactory = Callable[[int, str], str]
"""Makes a chunk's ``batchid`` from its 0-based number and its ``content_hash`` (hex)."""

ContentHasher = Callable[[Sequence[Sequence[Any]]], str]
"""Makes a chunk's ``content_hash`` from the source ids of its objects, per array in body
order, where the caller already holds a digest of each payload (see :func:`chunk_objects`)."""

#: The arrays of a body, in the documented order; an object's array index is its position here.
_ARRAYS: tuple[ObjectName, ...] = (
    ObjectName.CREDITOR,
    ObjectName.INVOICE,
    ObjectName.PAYMENT,
    ObjectName.ACTION,
)
# Keyed by the plain string: a lookup with an ObjectName member or with its str value both hit.
_ARRAY_INDEX: dict[str, int] = {name.value: i for i, name in enumerate(_ARRAYS)}


def _max_length(model: type[BaseModel], field_name: str) -> int:
    """The ``max_length`` constraint of a model field, so the limit has one source of truth."""
    for constraint in model.model_fields[field_name].metadata:
        limit = getattr(constraint, "max_length", None)
        if isinstance(limit, int):
            return limit
    raise LookupError(f"{model.__name__}.{field_name} has no max_length")  # pragma: no cover


#: Longest ``batchid`` (in characters) that :class:`amili.models.BatchRequest` accepts.
BATCHID_MAX_LENGTH = _max_length(BatchRequest, "batchid")

_HASH_LENGTH = hashlib.sha256().digest_size * 2
# Stands in for the real hash to learn a chunk's batchid length before its content is known.
_PROBE_HASH = "0" * _HASH_LENGTH


class BatchObject(NamedTuple):
    """One object ready for a body: its array, its compact JSON and the caller's key to it.

    A NamedTuple (not a dataclass) because the chunker unpacks a million of them and tuple
    unpacking is the cheapest way to read three fields. ``source_id`` is usually the source
    row's id; any value the caller needs back per object (e.g. a tuple) may ride there.
    """

    objectname: ObjectName
    payload: bytes
    source_id: Any


@dataclass(frozen=True, slots=True)
class Chunk:
    """One request body and the source id of every object in it.

    ``source_ids[objectname][objectindex]`` is the source id of the object the answer names by
    ``(objectname, objectindex)``; all four arrays are present, empty ones as ``()``.
    """

    number: int
    """0-based position of the chunk in the stream."""
    batchid: str
    content_hash: str
    """sha256 (hex) of the body from ``,"creditor":[`` to the last array's ``]``, or what the
    ``content_hash`` given to :func:`chunk_objects` makes of the objects' source ids.

    That is the objects' (objectname, payload) in array order, unambiguously (the payloads are
    JSON, so they delimit themselves); it leaves out batchid and offline, so a batchid can be
    derived from it and the same objects give the same hash on every run."""
    body: bytes = field(repr=False)
    """The whole request body: compact JSON, ``len(body) <= max_bytes``."""
    source_ids: Mapping[ObjectName, tuple[str, ...]] = field(repr=False)

    def source_id(self, objectname: str, objectindex: int) -> str:
        """The source id of the object an answer names; strict, unlike list indexing.

        A negative index would silently pick an object from the end, so it is refused too.
        """
        try:
            ids = self.source_ids[ObjectName(objectname)]
        except ValueError:
            raise KeyError(
                f"batch {self.batchid!r} has no object array {objectname!r} "
                f"(arrays: {', '.join(_ARRAYS)})"
            ) from None
        if not 0 <= objectindex < len(ids):
            raise IndexError(
                f"objectindex {objectindex} is out of range for array {objectname!r} of batch "
                f"{self.batchid!r}, which holds {len(ids)} object(s)"
            )
        return ids[objectindex]

    def object_count(self) -> int:
        """Number of objects in the body, over all four arrays."""
        return sum(len(ids) for ids in self.source_ids.values())


class ObjectTooLargeError(ValueError):
    """One object alone does not fit in a body of ``max_bytes``, so no chunking can send it."""

    def __init__(self, objectname: str, source_id: str, size: int, max_bytes: int, room: int):
        self.objectname = objectname
        self.source_id = source_id
        self.size = size
        self.max_bytes = max_bytes
        self.room = room
        super().__init__(
            f"{objectname} object {source_id!r} is {size} bytes of JSON, but a body of at most "
            f"max_bytes={max_bytes} bytes leaves room for {room} bytes of objects after its "
            f"envelope"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        """Keep the error picklable (for process pools) despite its extra arguments."""
        return (
            type(self),
            (self.objectname, self.source_id, self.size, self.max_bytes, self.room),
        )


def batch_id_with_prefix(prefix: str) -> BatchIdFactory:
    """A batch id factory giving ``{prefix}-{number:05d}-{content_hash[:16]}``.

    The pipeline passes the partition day as prefix, so a re-run of the same day with the same
    data gets the same batch ids (idempotent re-posting) and other days never collide.
    The id's length depends only on the chunk number, which :func:`chunk_objects` relies on.
    """
    if not isinstance(prefix, str) or not prefix:
        raise ValueError(f"a batch id prefix must be a non-empty string, got {prefix!r}")
    room = BATCHID_MAX_LENGTH - len("-00000-") - 16
    if len(prefix) > room:
        raise ValueError(
            f"batch id prefix {prefix!r} is {len(prefix)} characters; at most {room} leave "
            f"room for the chunk number and hash within {BATCHID_MAX_LENGTH} characters"
        )

    def batch_id(number: int, content_hash: str) -> str:
        return f"{prefix}-{number:05d}-{content_hash[:16]}"

    return batch_id


default_batch_id: BatchIdFactory = batch_id_with_prefix("batch")
"""``batch-{number:05d}-{hash16}``; pass :func:`batch_id_with_prefix` for unique ids per day."""


def serialize(
    objectname: ObjectName | str,
    value: BaseModel | Mapping[str, Any],
    source_id: str,
) -> BatchObject:
    """Write one object as compact JSON (exact Decimals, see :func:`amili.jsonio.dumps`).

    A model must be of the array's own model class, so an Invoice cannot land in ``payment``.
    """
    name = _object_name(objectname)
    if isinstance(value, BaseModel) and not isinstance(value, OBJECT_MODELS[name]):
        raise TypeError(
            f"a {type(value).__name__} cannot go in the {name.value!r} array "
            f"(expected {OBJECT_MODELS[name].__name__})"
        )
    payload = dumps(value)
    if not payload.startswith(b"{"):
        raise TypeError(f"object {source_id!r} must serialize to a JSON object, got {payload!r}")
    return BatchObject(name, payload, source_id)


TooLargeHandler = Callable[[BatchObject, ObjectTooLargeError], None]
"""Told about an object that fits in no body; the object is then left out and cutting goes on."""


def chunk_objects(
    objects: Iterable[BatchObject],
    *,
    max_objects: int,
    max_bytes: int,
    batch_id: BatchIdFactory = default_batch_id,
    offline: bool = False,
    header: BatchObject | None = None,
    header_alone: bool = False,
    first_number: int = 0,
    on_too_large: TooLargeHandler | None = None,
    content_hash: ContentHasher | None = None,
) -> Iterator[Chunk]:
    """Cut ``objects`` into request bodies of at most ``max_objects`` objects and ``max_bytes``.

    Greedy and order-keeping: a chunk is closed only when the next object would break a limit,
    the objects of chunk k all precede those of chunk k+1, and each array keeps the input's
    relative order. Objects of the four kinds may come interleaved.

    ``header``, if given, heads every body: it is the first object of its array in each chunk
    and counts against both limits in each (the Batch API gives a body's invoices to its one
    creditor object, so a creditor's invoices carry it in every body). A header alone is not a
    chunk, unless ``header_alone`` and no other chunk was made. ``first_number`` numbers the
    first chunk (to continue a numbering over several calls).

    The batchid is part of the body, and it derives from the content hash that is only known
    once the chunk is closed; so its length is learnt up front by calling ``batch_id`` with a
    probe hash, and a factory whose id length depends on the hash's *value* is refused.

    Arguments (the header's size included) are checked now; the objects are read lazily, as
    chunks are taken. An object that cannot fit in any body is passed to ``on_too_large`` and
    left out; without a handler, :class:`ObjectTooLargeError` is raised (after yielding the
    chunk before it). A header that does not fit with room for one more object raises at once.

    ``content_hash``, if given, makes each chunk's hash from its objects' source ids (per
    array, in body order) instead of hashing the body's arrays: for a caller whose source ids
    already carry a digest of each payload, that spares a second pass over every byte. It
    must identify the payloads as surely as their bytes would.
    """
    if isinstance(max_objects, bool) or not isinstance(max_objects, int) or max_objects < 1:
        raise ValueError(f"max_objects must be an integer >= 1, got {max_objects!r}")
    if not isinstance(offline, bool):
        raise TypeError(f"offline must be a bool, got {offline!r}")
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int):
        raise ValueError(f"max_bytes must be an integer, got {max_bytes!r}")
    if isinstance(first_number, bool) or not isinstance(first_number, int) or first_number < 0:
        raise ValueError(f"first_number must be an integer >= 0, got {first_number!r}")
    envelope = _envelope_size(offline) + _encoded_id_length(batch_id, first_number)
    smallest = envelope + len(b"{}")
    if max_bytes < smallest:
        raise ValueError(
            f"max_bytes={max_bytes} is too small: the envelope of a body is {envelope} bytes, "
            f"so even one empty object needs {smallest}"
        )
    if header is not None:
        k = _array_index(header)
        if max_objects < 2:
            raise ValueError("max_objects must be at least 2 when a header heads every body")
        room = max_bytes - envelope - len(b"{}") - 1  # with one more (empty) object after it
        if len(header.payload) > room:
            raise ObjectTooLargeError(
                _ARRAYS[k].value, header.source_id, len(header.payload), max_bytes, room
            )
    return _chunks(iter(objects), max_objects, max_bytes, batch_id, offline, header,
                   header_alone, first_number, on_too_large, content_hash)


def _array_index(obj: BatchObject) -> int:
    """The array of ``obj``, after checking it is an object the chunker can splice in."""
    objectname, payload, source_id = obj
    try:
        k = _ARRAY_INDEX[objectname]
    except (KeyError, TypeError):
        raise ValueError(
            f"object {source_id!r} has objectname {objectname!r}, "
            f"not one of {', '.join(_ARRAYS)}"
        ) from None
    if not (isinstance(payload, bytes) and payload.startswith(b"{") and payload.endswith(b"}")):
        raise TypeError(
            f"object {source_id!r} must have bytes of one JSON object as payload "
            f"(see serialize()), got {reprlib.repr(payload)}"
        )
    return k


def _chunks(
    objects: Iterator[BatchObject],
    max_objects: int,
    max_bytes: int,
    batch_id: BatchIdFactory,
    offline: bool,
    header: BatchObject | None = None,
    header_alone: bool = False,
    number: int = 0,
    on_too_large: TooLargeHandler | None = None,
    content_hash: ContentHasher | None = None,
) -> Iterator[Chunk]:
    """The streaming loop: O(1) work per object, one chunk held at a time."""
    payloads: tuple[list[bytes], ...] = ([], [], [], [])
    ids: tuple[list[Any], ...] = ([], [], [], [])
    fixed = _envelope_size(offline)
    id_length = _encoded_id_length(batch_id, number)
    # A header stays at the head of its array; "count" and "size" include it.
    head_k = _array_index(header) if header is not None else 0
    head_count = 1 if header is not None else 0
    head_size = len(header.payload) if header is not None else 0

    def start() -> tuple[int, int]:
        if header is not None:
            payloads[head_k].append(header.payload)
            ids[head_k].append(header.source_id)
        return fixed + id_length + head_size, head_count

    size, count = start()  # bytes of the body as it stands, objects in it
    made = 0
    for obj in objects:
        objectname, payload, source_id = obj
        try:  # (the checks of _array_index, inline: this loop runs once per object)
            k = _ARRAY_INDEX[objectname]
        except (KeyError, TypeError):
            k = _array_index(obj)  # raises the error that names the object
        if not (type(payload) is bytes and payload[:1] == b"{" and payload[-1:] == b"}"):
            _array_index(obj)  # raises the error that names the object
        array = payloads[k]
        extra = len(payload) + 1 if array else len(payload)  # a comma after the first
        if count >= max_objects or size + extra > max_bytes:
            empty_extra = len(payload) + (1 if header is not None and k == head_k else 0)
            if on_too_large is not None and (
                fixed + id_length + head_size + empty_extra > max_bytes
            ):
                # fits in no body: leave it out without cutting the chunk short
                on_too_large(obj, ObjectTooLargeError(
                    _ARRAYS[k].value, source_id, len(payload), max_bytes,
                    max_bytes - fixed - id_length - head_size,
                ))
                continue
            if count > head_count:
                yield _close(number, payloads, ids, id_length, batch_id, offline, content_hash)
                made += 1
                number += 1
                id_length = _encoded_id_length(batch_id, number)  # grows at 100000 chunks
                size, count = start()
                extra = empty_extra
            if size + extra > max_bytes:
                raise ObjectTooLargeError(
                    _ARRAYS[k].value, source_id, len(payload), max_bytes, max_bytes - size
                )
        array.append(payload)
        ids[k].append(source_id)
        size += extra
        count += 1
    if count > head_count or (count and header_alone and not made):
        yield _close(number, payloads, ids, id_length, batch_id, offline, content_hash)


def _close(
    number: int,
    payloads: tuple[list[bytes], ...],
    ids: tuple[list[Any], ...],
    id_length: int,
    batch_id: BatchIdFactory,
    offline: bool,
    content_hasher: ContentHasher | None = None,
) -> Chunk:
    """Build the chunk's body and hash, then empty the buffers for the next chunk."""
    arrays = [b",".join(array) for array in payloads]
    section = _section(arrays)
    if content_hasher is not None:
        content_hash = content_hasher(ids)
    else:
        digest = hashlib.sha256()
        for piece in section:
            digest.update(piece)
        content_hash = digest.hexdigest()
    batchid = batch_id(number, content_hash)
    encoded_id = _encode_id(batchid, number)
    if len(encoded_id) > id_length:
        raise ValueError(
            f"batch_id({number}, ...) gave {batchid!r}, longer than for a probe hash "
            f"({id_length} bytes of JSON); the id's length must not depend on the hash's value"
        )
    body = b"".join([*_head(encoded_id, offline), *section, b"}"])
    source_ids = {name: tuple(source) for name, source in zip(_ARRAYS, ids, strict=True)}
    for buffer in (*payloads, *ids):
        buffer.clear()
    return Chunk(number, batchid, content_hash, body, source_ids)


def _head(encoded_id: bytes, offline: bool) -> list[bytes]:
    return [b'{"batchid":', encoded_id, b',"offline":', b"true" if offline else b"false"]


def _section(arrays: list[bytes]) -> list[bytes]:
    """The four arrays in the documented order: the part of the body the content hash covers."""
    creditor, invoice, payment, action = arrays
    return [
        b',"creditor":[', creditor,
        b'],"invoice":[', invoice,
        b'],"payment":[', payment,
        b'],"action":[', action, b"]",
    ]  # fmt: skip


def _encode_id(batchid: object, number: int) -> bytes:
    """The batchid as a JSON string, checked against what :class:`BatchRequest` accepts."""
    if not isinstance(batchid, str) or not 1 <= len(batchid) <= BATCHID_MAX_LENGTH:
        raise ValueError(
            f"batch_id({number}, ...) must give a string of 1 to {BATCHID_MAX_LENGTH} "
            f"characters, got {batchid!r}"
        )
    return dumps(batchid)


def _encoded_id_length(batch_id: BatchIdFactory, number: int) -> int:
    return len(_encode_id(batch_id(number, _PROBE_HASH), number))


def _envelope_size(offline: bool) -> int:
    """Bytes of a body with four empty arrays, not counting the batchid's JSON string."""
    return sum(map(len, _head(b"", offline))) + sum(map(len, _section([b""] * 4))) + len(b"}")


def _object_name(objectname: ObjectName | str) -> ObjectName:
    try:
        return ObjectName(objectname)
    except ValueError:
        raise ValueError(f"objectname {objectname!r} is not one of {', '.join(_ARRAYS)}") from None
