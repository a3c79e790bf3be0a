"""A pickle reader for annotation files that resolves plain data only.

`pickle.load` can execute any code a file names. `load_pickle` resolves only what MMAction2 /
pyskl annotation files need: numpy's array and scalar reconstruction under their numpy 1 and
numpy 2 names, the builtin containers and plain types, `collections.OrderedDict`, and the
`_codecs.encode(..., "latin1")` call of protocol-2 pickles. Anything else is refused, named,
before it is called (`data_specs/imports.md`, "Pickles can run code").
"""

import io
import pickle
import struct
from pathlib import Path

import numpy as np

from ..errors import AgcnError


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """What protocol-2 pickles call to rebuild `bytes` (`_codecs.encode(text, "latin1")`)."""
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} is not allowed")
    return text.encode("latin1")


_PLAIN_KINDS = "biufcSU"  # bool, integers, floats, complex, bytes and str: no object pointers


class _NdarrayMarker:
    """Stands for `numpy.ndarray` in the pickle: `_reconstruct` takes it, but nothing can call it
    (`ndarray(shape, object_dtype, buffer)` would read pointers from raw bytes)."""


_NDARRAY = _NdarrayMarker()


def _check_dtype(dtype: object) -> np.dtype:
    if not isinstance(dtype, np.dtype):
        raise pickle.UnpicklingError(f"expected a numpy dtype, found {type(dtype).__name__}")
    if dtype.kind not in _PLAIN_KINDS or dtype.fields is not None or dtype.subdtype is not None or dtype.hasobject:
        raise pickle.UnpicklingError(f"numpy dtype {dtype} is not allowed; annotation files hold plain numeric arrays")
    return dtype


def _is_empty_shape(shape: object) -> bool:
    dims = shape if isinstance(shape, tuple) else (shape,)
    return all(isinstance(d, int) and d >= 0 for d in dims) and 0 in dims


def _sized(cls: type) -> object:
    """`bytes` / `bytearray` from data only: `bytearray(10**10)` would allocate from a number."""

    def build(*args: object) -> object:
        if args and isinstance(args[0], int):
            raise pickle.UnpicklingError(f"{cls.__name__}({args[0]}) from a size is not allowed; data must be present")
        return cls(*args)

    return build


def _allowed_globals() -> dict[tuple[str, str], object]:
    from collections import OrderedDict

    core = getattr(np, "_core", None) or np.core  # numpy 2 / numpy 1
    multiarray, numeric = core.multiarray, core.numeric

    def reconstruct(subtype: object, shape: object, typecode: object) -> np.ndarray:
        if subtype is not _NDARRAY:
            raise pickle.UnpicklingError("_reconstruct of anything but numpy.ndarray is not allowed")
        # numpy pickles an empty (0,) array here and sets shape and data in BUILD, which checks the
        # data against the shape; a shape declared here would be allocated without any data behind it.
        if not _is_empty_shape(shape):
            raise pickle.UnpicklingError(
                f"an array declared with shape {str(shape)[:60]} but no data (numpy pickles (0,) here)"
            )
        return multiarray._reconstruct(np.ndarray, shape, typecode)

    def scalar(dtype: object, *args: object) -> object:
        return multiarray.scalar(_check_dtype(dtype), *args)

    def frombuffer(buf: object, dtype: object, *args: object) -> np.ndarray:  # args: shape, order[, axis order]
        return numeric._frombuffer(buf, _check_dtype(dtype), *args)

    allowed: dict[tuple[str, str], object] = {("numpy", "ndarray"): _NDARRAY, ("numpy", "dtype"): np.dtype}
    for pkg in ("numpy.core", "numpy._core"):  # names written by numpy 1 and numpy 2
        allowed[(f"{pkg}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{pkg}.multiarray", "scalar")] = scalar
        allowed[(f"{pkg}.numeric", "_frombuffer")] = frombuffer
    for mod in ("builtins", "__builtin__"):  # protocol 2 writes the Python 2 name
        for cls in (set, frozenset, str, int, float, bool, complex, list, dict, tuple):
            allowed[(mod, cls.__name__)] = cls
        allowed[(mod, "bytes")] = _sized(bytes)
        allowed[(mod, "bytearray")] = _sized(bytearray)
    allowed[("_codecs", "encode")] = _latin1_encode
    allowed[("collections", "OrderedDict")] = OrderedDict
    return allowed


class SafeUnpickler(pickle._Unpickler):
    """An Unpickler that rebuilds plain numpy arrays and containers and refuses everything else.

    `find_class` resolves only `_allowed_globals`. BUILD (`obj.__setstate__(state)`) is allowed
    on arrays and dtypes only, and checked: a dtype's state can describe object fields over raw
    bytes, so dtypes must come out plain (no objects, fields or subarrays) and arrays are built
    only with plain dtypes. It is the pure-Python unpickler, since the C one's BUILD cannot be
    intercepted; annotation files are a few opcodes per sample, so this costs seconds.
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file: io.BufferedIOBase, path: Path):
        super().__init__(file)
        self.path = path
        self.allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> object:
        obj = self.allowed.get((module, name))
        if obj is None:
            raise AgcnError(
                f"{self.path}: refusing to load {module}.{name} from the pickle; agcn reads only numpy arrays "
                "and plain containers from annotation files, since a pickle can run code"
            )
        return obj

    def load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if isinstance(inst, np.ndarray) and isinstance(state, tuple) and len(state) in (4, 5):
            _check_dtype(state[-3])  # (version,) shape, dtype, is_fortran, data
            inst.__setstate__(state)
        elif isinstance(inst, np.dtype):
            inst.__setstate__(state)
            _check_dtype(inst)
        else:
            raise pickle.UnpicklingError(f"setting the state of a {type(inst).__name__} is not allowed")

    dispatch[pickle.BUILD[0]] = load_build

    def load_global(self) -> None:
        """GLOBAL (protocols 0-2): `module\\nname\\n`. A file cut inside it would otherwise name a
        truncated global ("numpy._core.mult") and be refused as unsafe rather than as truncated."""
        module, name = self.readline(), self.readline()
        if not (module.endswith(b"\n") and name.endswith(b"\n")):
            raise EOFError("the file ends inside a global name: truncated")
        self.append(self.find_class(module[:-1].decode("utf-8"), name[:-1].decode("utf-8")))

    dispatch[pickle.GLOBAL[0]] = load_global


def load_pickle(path: Path) -> object:
    """The object pickled in `path`, through `SafeUnpickler`; AgcnError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise AgcnError(f"{path}: no such file")
    try:
        with path.open("rb") as f:
            data = SafeUnpickler(f, path).load()
    except OSError as e:
        raise AgcnError(f"{path}: cannot read ({e.strerror})") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            UnicodeDecodeError, OverflowError, MemoryError, struct.error) as e:  # fmt: skip
        raise AgcnError(f"{path}: not a readable pickle ({type(e).__name__}: {e})") from None
    _check_depth(data, path)
    return data


MAX_DEPTH = 32  # annotation files nest 3 to 5 levels (dict -> list -> dict -> array)


def _check_depth(data: object, path: Path) -> None:
    """Refuse containers nested deeper than MAX_DEPTH: every later step that prints or walks the
    data (a repr in a message, numpy reading nested lists) would recurse once a level. The walk
    itself keeps its own stack, so a million levels cost memory, not Python's recursion limit."""
    stack, deepest = [(data, 1)], {}  # deepest: id -> the deepest level a shared container was seen at
    while stack:
        item, depth = stack.pop()
        if deepest.get(id(item), 0) >= depth:  # the memo lets one container appear many times
            continue
        if isinstance(item, dict):
            children = [*item.keys(), *item.values()]
        elif isinstance(item, list | tuple | set | frozenset):
            children = list(item)
        else:
            continue
        deepest[id(item)] = depth
        if depth > MAX_DEPTH:
            raise AgcnError(
                f"{path}: containers nested more than {MAX_DEPTH} levels deep; an annotation file nests a few "
                "(a dict of lists of dicts of arrays)"
            )
        stack.extend((child, depth + 1) for child in children)
