"""Cache keys: from a call's arguments to an unambiguous LOCAL key and REMOTE key.

Two calls share a key only if they are the same call. Earlier designs joined ``str(arg)`` with
separators, so ``f("a:b", "c")`` and ``f("a", "b:c")`` collided. Here:

* the LOCAL key is a tuple of *canonical* values: ``str`` and ``int`` as themselves (a tuple
  slot has no separator to confuse), everything else as a ``(tag, text)`` pair, so ``1``,
  ``True``, ``1.0`` and ``"1"`` stay distinct;
* the REMOTE key spells the same tuple with every component percent-encoded (``quote`` with no
  safe characters), so the separators ``: = & { } # !`` can only be separators. Non-``str``
  values (and the empty string) start with ``!``, which ``quote`` never emits for a string. An
  argument list or id longer than 200 characters is replaced by ``#`` and a 128-bit BLAKE2b
  digest.

Key layout in Redis (``ns`` is the namespace)::

    ns:v:{key_type=id}:use_case:name=value&name=value   a cached value
    ns:w:{key_type=id}                                  the entity's watermark
    ns:flush:{ns}                                       the namespace's flush watermark

The ``{...}`` hash tag keeps an entity's values and its watermark in one Redis Cluster slot, so
the conditional-write script can read the watermark atomically (the full layout, with the bus's
keys and the Cluster's per-slot copies of the flush watermark, is in ``bus._names``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, cast

from bus._names import as_is, escape, shorten, watermark_key

from ._exceptions import KeyBuildError

__all__ = ["BadCall", "GCacheKey", "KeySpec", "canonical", "watermark_key"]

_AUTO_IGNORED = ("self", "cls")
_EMPTY = inspect.Parameter.empty
_new_key = object.__new__


def canonical(value: object) -> Hashable:
    """A hashable stand-in for ``value`` that equals another's only for equal values of one type.

    ``str`` and ``int`` stand for themselves; anything else becomes ``(tag, text)`` or, for
    containers, ``(tag, tuple_of_canonicals)`` — recursively, so ``{1: "a"}`` and ``{"1": "a"}``,
    ``[1]`` and ``(1,)`` or ``[True]`` and ``[1]`` stay apart.
    """
    kind = type(value)
    if kind is str or kind is int:
        return value
    if kind is bool:
        return ("b", "1" if value else "0")
    if value is None:
        return ("n", "")
    if kind is float:
        return ("f", repr(value))
    if kind is bytes:
        return ("x", cast(bytes, value).hex())
    if kind is list or kind is tuple:
        return (kind.__name__, tuple(canonical(item) for item in cast(tuple[Any, ...], value)))
    if kind is dict:
        pairs = sorted(
            ((canonical(k), canonical(v)) for k, v in cast(dict[Any, Any], value).items()),
            key=lambda pair: repr(pair[0]),
        )
        return ("dict", tuple(part for pair in pairs for part in pair))  # k1, v1, k2, v2, ...
    if kind is set or kind is frozenset:
        items = sorted((canonical(item) for item in cast(set[Any], value)), key=repr)
        return (kind.__name__, tuple(items))
    if kind.__repr__ is object.__repr__:
        raise KeyBuildError(
            f"{kind.__qualname__} has no stable repr (it would embed a memory address)"
        )
    return (f"r:{kind.__module__}.{kind.__qualname__}", repr(value))


def _encode(canon: Hashable) -> str:
    """The REMOTE spelling of a canonical value. ``quote`` leaves no ``! ( , )`` in a string, so
    those mark types and nesting unambiguously. The empty string is spelled ``!s~``: spelled as
    nothing, ``[""]`` and ``[]`` would both be ``!list()`` (a collision the nightly fuzz run
    found)."""
    if type(canon) is str:
        return escape(canon) if canon else "!s~"
    if type(canon) is int:
        return f"!i{canon}"
    tag, payload = cast(tuple[str, Any], canon)
    if type(payload) is tuple:
        return f"!{escape(tag)}(" + ",".join(_encode(item) for item in payload) + ")"
    return f"!{escape(tag)}~{escape(payload)}"


class GCacheKey:
    """One cached call, as the config provider sees it.

    ``args`` lists the keyed arguments (not the id, not ignored ones) as ``(name, text)`` pairs,
    where ``text`` is the argument's encoded form in the Redis key.

    The keys gcache hands to the provider are instances of a subclass private to the decorated
    function (it saves setting the fields every call of the function shares): equal to, and
    copied or pickled as, a plain ``GCacheKey``; their ``key_type``, ``use_case`` and
    ``invalidation_tracking`` are read-only.
    """

    __slots__ = ("_args", "_names", "_rest", "id", "invalidation_tracking", "key_type", "use_case")
    _names: tuple[str, ...]  # set, with _rest, only on keys gcache makes (see KeySpec)
    _rest: tuple[Hashable, ...]

    def __init__(
        self,
        key_type: str,
        id: str,
        use_case: str,
        invalidation_tracking: bool = False,
        args: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.key_type = key_type
        self.id = id
        self.use_case = use_case
        self.invalidation_tracking = invalidation_tracking
        self._args: tuple[tuple[str, str], ...] = tuple(args)

    @property
    def args(self) -> tuple[tuple[str, str], ...]:
        try:
            return self._args
        except AttributeError:  # a key gcache made for a call: spelled out on first use
            self._args = tuple(
                (name, _encode(canon)) for name, canon in zip(self._names, self._rest, strict=True)
            )
            return self._args

    def __reduce__(self) -> tuple[type[GCacheKey], tuple[Any, ...]]:
        # A key gcache made is of a class private to its function: copy and pickle a plain one.
        return (
            GCacheKey,
            (self.key_type, self.id, self.use_case, self.invalidation_tracking, self.args),
        )

    def __repr__(self) -> str:
        return (
            f"GCacheKey(key_type={self.key_type!r}, id={self.id!r}, use_case={self.use_case!r}, "
            f"args={self.args!r}, invalidation_tracking={self.invalidation_tracking!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GCacheKey):
            return NotImplemented
        return (self.key_type, self.id, self.use_case, self.args) == (
            other.key_type,
            other.id,
            other.use_case,
            other.args,
        )

    def __hash__(self) -> int:
        return hash((self.key_type, self.id, self.use_case, self.args))


IdArg = str | tuple[str, Callable[[Any], Any]]


class BadCall(TypeError):
    """The arguments do not fit the signature: the function itself will say so when called."""


class KeySpec:
    """Everything about one decorated function that key building needs, worked out once.

    ``local_key(args, kwargs)`` is on the hot path of every call: it maps arguments to
    parameters by position and name without ``inspect.Signature.bind`` (which costs microseconds),
    and falls back to ``bind`` only for ``*args``/``**kwargs`` functions or unusual calls.
    """

    __slots__ = (
        "_adapters",
        "_all_positional",
        "_id_extract",
        "_id_index",
        "_key_type_text",
        "_keyed",
        "_known",
        "_params",
        "_positional",
        "_signature",
        "_simple",
        "_use_case_text",
        "arg_names",
        "gcache_key",
        "key_type",
        "local_key",
        "tracked",
        "use_case",
    )

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        key_type: str,
        id_arg: IdArg,
        use_case: str,
        arg_adapters: Mapping[str, Callable[[Any], Any]] | None,
        ignore_args: Sequence[str] | None,
        tracked: bool,
    ) -> None:
        if not isinstance(key_type, str) or not key_type:
            raise ValueError(f"key_type must be a non-empty string, got {key_type!r}")
        if not isinstance(use_case, str) or not use_case:
            raise ValueError(f"use_case must be a non-empty string, got {use_case!r}")
        self.key_type = key_type
        self.use_case = use_case
        self.tracked = tracked
        # Spelled once: they are in every REMOTE key of this function.
        self._key_type_text = escape(key_type)
        self._use_case_text = escape(use_case)
        self._signature = inspect.signature(func)
        params = list(self._signature.parameters.values())
        names = [p.name for p in params]
        where = f"@cached {use_case!r}"

        if isinstance(id_arg, tuple):
            if len(id_arg) != 2 or not isinstance(id_arg[0], str) or not callable(id_arg[1]):
                raise TypeError(
                    f"{where}: id_arg must be a name or (name, extractor), got {id_arg!r}"
                )
            id_name, extract = id_arg
            self._id_extract: Callable[[Any], Any] | None = extract
        elif isinstance(id_arg, str):
            id_name, self._id_extract = id_arg, None
        else:
            raise TypeError(f"{where}: id_arg must be a name or (name, extractor), got {id_arg!r}")
        if id_name not in names:
            raise ValueError(f"{where}: id_arg {id_name!r} is not a parameter of {names}")

        ignored = list(ignore_args or ())
        for name in ignored:
            if name not in names:
                raise ValueError(f"{where}: ignore_args names {name!r}, not a parameter of {names}")
        if id_name in ignored:
            raise ValueError(f"{where}: {id_name!r} is the id_arg and cannot be ignored")
        adapters = dict(arg_adapters or {})
        for name, adapter in adapters.items():
            if name not in names:
                raise ValueError(
                    f"{where}: arg_adapters names {name!r}, not a parameter of {names}"
                )
            if not callable(adapter):
                raise TypeError(f"{where}: arg_adapters[{name!r}] must be callable")
        if params and params[0].name in _AUTO_IGNORED and params[0].name != id_name:
            ignored.append(params[0].name)  # a method's receiver is not part of the key

        self._params = names
        self._id_index = names.index(id_name)
        keyed = [i for i, p in enumerate(params) if p.name not in ignored and p.name != id_name]
        self._keyed = tuple(keyed)
        self.arg_names = tuple(names[i] for i in keyed)
        self._adapters = tuple(adapters.get(names[i]) for i in keyed)
        self._known = frozenset(
            p.name for p in params if p.kind is not inspect.Parameter.POSITIONAL_ONLY
        )
        self._positional = sum(
            p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
            for p in params
        )
        self._simple = all(
            p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
            for p in params
        )
        # Calls that pass exactly every parameter by position skip all mapping work.
        self._all_positional = (
            len(params) if self._simple and self._positional == len(params) else -1
        )
        self.local_key: Callable[[tuple[Any, ...], dict[str, Any]], tuple[Hashable, ...]] = (
            self._id_only_key() if self._id_extract is None and not self._keyed else self._key
        )
        """``(args, kwargs)`` -> ``(use_case, entity_id, id_canon_or_None, *keyed_arg_canons)``.

        Raises :class:`BadCall` for a call the function itself would reject, ``KeyBuildError``
        for an argument with no stable key form, and whatever an adapter or id extractor
        raises."""
        self.gcache_key: Callable[[tuple[Hashable, ...]], GCacheKey] = self._provider_view()
        """``local_key`` -> the provider's view of the call, a :class:`GCacheKey`."""

    # -- hot path -------------------------------------------------------------------------

    def _provider_view(self) -> Callable[[tuple[Hashable, ...]], GCacheKey]:
        """:attr:`gcache_key`. Built on every cached call, so it sets only what varies: the key
        is an instance of a subclass made here, whose per-function fields are class attributes
        (read-only on the instance), and the readable ``args`` are only spelled out if the
        provider asks for them."""
        names = self.arg_names
        fields: dict[str, Any] = {
            "__slots__": (),
            "__module__": GCacheKey.__module__,
            "__qualname__": GCacheKey.__qualname__,
            "key_type": self.key_type,
            "use_case": self.use_case,
            "invalidation_tracking": self.tracked,
            "_names": names,
        }
        if not names:
            fields["_args"] = ()  # keyed by its id alone: nothing to spell out
        bound = cast("type[GCacheKey]", type(GCacheKey.__name__, (GCacheKey,), fields))

        if not names:

            def id_only_view(local_key: tuple[Hashable, ...]) -> GCacheKey:
                key = _new_key(bound)
                key.id = local_key[1]  # type: ignore[assignment]
                return key

            return id_only_view

        def view(local_key: tuple[Hashable, ...]) -> GCacheKey:
            key = _new_key(bound)
            key.id = local_key[1]  # type: ignore[assignment]
            key._rest = local_key[3:]
            return key

        return view

    def _values(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any] | None:
        """Argument value per parameter, or None when the fast mapping does not apply."""
        if not self._simple or len(args) > self._positional:
            return None
        if kwargs and (
            not kwargs.keys() <= self._known
            or any(name in kwargs for name in self._params[: len(args)])
        ):
            return None  # let bind() or the function itself report the bad call
        values: list[Any] = list(args)
        params = self._signature.parameters
        for name in self._params[len(args) :]:
            if name in kwargs:
                values.append(kwargs[name])
            else:
                default = params[name].default
                if default is _EMPTY:
                    return None
                values.append(default)
        return values

    def _bound_values(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
        try:
            bound = self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise BadCall(str(exc)) from exc
        bound.apply_defaults()
        return [bound.arguments[name] for name in self._params]

    def _id_only_key(self) -> Callable[[tuple[Any, ...], dict[str, Any]], tuple[Hashable, ...]]:
        """:attr:`local_key` for a function keyed by its id alone, with no extractor: the common
        call (the id a ``str``, every argument by position) in a few steps, anything else
        through :meth:`_key`."""
        use_case, index, count, general = (
            self.use_case,
            self._id_index,
            self._all_positional,
            self._key,
        )

        def local_key(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Hashable, ...]:
            if not kwargs and len(args) == count:
                raw_id = args[index]
                if type(raw_id) is str:
                    return (use_case, raw_id, None)
            return general(args, kwargs)

        return local_key

    def _key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Hashable, ...]:
        """:attr:`local_key`, for every function and call."""
        values: Sequence[Any] | None
        if not kwargs and len(args) == self._all_positional:
            values = args  # the common shape: every argument given by position
        else:
            values = self._values(args, kwargs)
            if values is None:
                values = self._bound_values(args, kwargs)
        raw_id = values[self._id_index]
        if self._id_extract is not None:
            raw_id = self._id_extract(raw_id)
        if type(raw_id) is str:
            head: tuple[Hashable, ...] = (self.use_case, raw_id, None)
        else:  # keep 1 and "1" apart while both name entity "1"
            head = (self.use_case, str(raw_id), canonical(raw_id))
        if not self._keyed:
            return head
        return head + tuple(
            [
                canonical(values[index] if adapter is None else adapter(values[index]))
                for index, adapter in zip(self._keyed, self._adapters, strict=True)
            ]
        )

    # -- off the hot path -----------------------------------------------------------------

    def remote_key(self, namespace: str, local_key: tuple[Hashable, ...]) -> str:
        """The value key: ``{namespace}:v:{key_type=id}:{use_case}:{args}``. Its hash tag is the
        entity's, shared with the entity's watermark key (``watermark_key``)."""
        return self.value_key_of(namespace)(local_key)

    def value_key_of(self, namespace: str) -> Callable[[tuple[Hashable, ...]], str]:
        """:meth:`remote_key` with the namespace bound, for a caller that builds many: the
        parts every key of this function shares are spelled once, here."""
        head = f"{namespace}:v:{{{self._key_type_text}="
        tail = f"}}:{self._use_case_text}:"
        args_text = self._args_text

        def value_key(local_key: tuple[Hashable, ...]) -> str:
            entity_id: str = local_key[1]  # type: ignore[assignment]
            # bus._names.component(entity_id), inline: a REMOTE hit builds this key and no other.
            tag_id = entity_id if as_is(entity_id) else shorten(escape(entity_id))
            if len(local_key) == 3 and local_key[2] is None:  # the id is the only keyed argument
                return f"{head}{tag_id}{tail}"
            return f"{head}{tag_id}{tail}{args_text(local_key)}"

        return value_key

    def _args_text(self, local_key: tuple[Hashable, ...]) -> str:
        """The arguments' part of the value key (after the use case)."""
        parts = [
            f"{name}={_encode(canon)}"
            for name, canon in zip(self.arg_names, local_key[3:], strict=True)
        ]
        if local_key[2] is not None:  # a non-str id: keep 1 and "1" apart
            parts.insert(0, f"~id={_encode(local_key[2])}")
        return shorten("&".join(parts))
