"""Metadata filters: a small MongoDB-style language, compiled once into a predicate.

``{"kind": "faq"}`` matches metadata whose "kind" equals "faq"; a list value matches any of
its items (``{"kind": ["faq", "howto"]}``, as langchain-community's FAISS store); a dict of
operators applies each (``{"year": {"$gte": 2020, "$lt": 2024}}``); several fields must all
match. Operators:

- comparisons: ``$eq``, ``$ne`` (alias ``$neq``), ``$gt``, ``$gte``, ``$lt``, ``$lte``;
- membership: ``$in``, ``$nin`` (the value is in / not in a list);
- lists and text: ``$contains`` (the stored list or string contains the value), ``$any`` /
  ``$all`` (the stored list or string contains any / all of a list's items: as elements of
  a list, as substrings of a string, as LlamaIndex's ANY / ALL), ``$text_match`` /
  ``$text_match_insensitive`` (substring of a stored string), ``$is_empty`` (true: the field
  is missing, None, "" or []);
- logic: ``{"$and": [f, ...]}``, ``{"$or": [f, ...]}``, ``{"$not": f}``.

A missing field (or None) matches only ``$ne``, ``$nin`` and ``$is_empty``; values of
another type (a string against ``$gt 3``) do not match. Unknown operators and operands of
the wrong kind raise when the filter is compiled, before any search.
"""
from __future__ import annotations

import operator
from typing import Any, Callable, Mapping

Predicate = Callable[[Mapping[str, Any]], bool]

COMPARISONS = {"$eq": operator.eq, "$ne": operator.ne, "$neq": operator.ne,
               "$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt, "$lte": operator.le}
LIST_OPERANDS = {"$in", "$nin", "$any", "$all"}
OTHERS = {"$contains", "$text_match", "$text_match_insensitive", "$is_empty"} | LIST_OPERANDS
LOGICAL = {"$and", "$or", "$not"}
OPERATORS = tuple(sorted(COMPARISONS)) + tuple(sorted(OTHERS))


def compile_filter(spec: Mapping[str, Any] | None) -> Predicate | None:
    """A predicate on a metadata dict for a filter ``spec`` (None: no filter, returns None).

    Raises TypeError when ``spec`` is not a dict and ValueError naming an unknown operator.
    """
    if spec is None:
        return None
    if not isinstance(spec, Mapping):
        raise TypeError(f"filter must be a dict (field -> value or {{operator: value}}), got "
                        f"{type(spec).__name__}")
    return _all_of([_clause(key, value) for key, value in spec.items()])


def _clause(key: str, value: Any) -> Predicate:
    if not isinstance(key, str):
        raise TypeError(f"filter keys must be strings, got {key!r}")
    if key in LOGICAL:
        return _logical(key, value)
    if key.startswith("$"):
        raise ValueError(f"filter operator {key!r} is not supported at the top level; logical "
                         f"operators are {sorted(LOGICAL)}, field operators {list(OPERATORS)}")
    if isinstance(value, Mapping) and any(str(op).startswith("$") for op in value):
        tests = [_field_test(key, op, operand) for op, operand in value.items()]
        return lambda metadata: all(test(metadata.get(key)) for test in tests)
    if isinstance(value, list):
        return _field_predicate(key, _field_test(key, "$in", value))
    return _field_predicate(key, _field_test(key, "$eq", value))


def _field_predicate(key: str, test: Callable[[Any], bool]) -> Predicate:
    return lambda metadata: test(metadata.get(key))


def _logical(op: str, value: Any) -> Predicate:
    if op == "$not":
        inner = compile_filter(value)
        return lambda metadata: not inner(metadata)
    if not isinstance(value, list) or not value:
        raise TypeError(f"filter {op} takes a non-empty list of filters, got {value!r}")
    parts = [compile_filter(part) for part in value]
    return _all_of(parts) if op == "$and" else lambda metadata: any(p(metadata) for p in parts)


def _all_of(parts: list[Predicate]) -> Predicate:
    return lambda metadata: all(p(metadata) for p in parts)


def _field_test(key: str, op: Any, operand: Any) -> Callable[[Any], bool]:
    """A test on one stored value (None when the field is missing)."""
    if op not in COMPARISONS and op not in OTHERS:
        raise ValueError(f"filter operator {op!r} (field {key!r}) is not supported; use one "
                         f"of {list(OPERATORS)}")
    if op in LIST_OPERANDS and not isinstance(operand, (list, tuple, set, frozenset)):
        raise TypeError(f"filter {op} (field {key!r}) takes a list, got {operand!r}")
    if op in ("$text_match", "$text_match_insensitive") and not isinstance(operand, str):
        raise TypeError(f"filter {op} (field {key!r}) takes a string, got {operand!r}")
    if op == "$is_empty":
        if not isinstance(operand, bool):
            raise TypeError(f"filter $is_empty (field {key!r}) takes True or False, got "
                            f"{operand!r}")
        return lambda v: (v is None or v == "" or v == []) == operand
    if op in ("$ne", "$neq", "$nin"):
        positive = _field_test(key, "$eq" if op != "$nin" else "$in", operand)
        return lambda v: v is None or not positive(v)
    return _guarded(_test(op, operand))


def _test(op: str, operand: Any) -> Callable[[Any], bool]:
    if op in COMPARISONS:
        compare = COMPARISONS[op]
        return lambda v: compare(v, operand)
    if op == "$in":
        return lambda v: v in operand
    if op == "$contains":
        return lambda v: isinstance(v, (list, str)) and operand in v
    if op == "$any":
        return lambda v: isinstance(v, (list, str)) and any(x in v for x in operand)
    if op == "$all":
        return lambda v: isinstance(v, (list, str)) and all(x in v for x in operand)
    if op == "$text_match":
        return lambda v: isinstance(v, str) and operand in v
    low = operand.lower()   # $text_match_insensitive
    return lambda v: isinstance(v, str) and low in v.lower()


def _guarded(test: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """``test``, false for a missing value and for values it cannot compare."""
    def guarded(v: Any) -> bool:
        if v is None:
            return False
        try:
            return bool(test(v))
        except TypeError:
            return False
    return guarded
