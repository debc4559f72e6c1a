"""A meta-path finder that makes `import tinygrad...` resolve to teeny, for measuring how many tinygrad programs and
tests run on teeny by changing nothing but the import. It only renames modules: it adds no functionality to teeny
and never patches a teeny module.

Every `tinygrad.X` module is a stand-in module whose attribute lookups go to the teeny module in MODULE_MAP
(`tinygrad.tensor` -> `teeny.tensor`, `tinygrad.device` -> `teeny.runtime.device`, ...). Objects are teeny's own:
`tinygrad.Tensor is teeny.Tensor`, so a method teeny's Tensor lacks fails with teeny's own AttributeError.

Two modes, chosen by the environment variable TGC_SHIM_MODE:
- strict (default): a name a mapped module lacks is missing (`from tinygrad.helpers import DEV` raises
  ImportError) and a tinygrad module with no teeny counterpart (tinygrad.uop.ops, tinygrad.codegen, ...) cannot be
  imported. A test file that imports one at its top fails to collect as a whole.
- lenient: those missing names and modules import as stubs. A stub is falsy, compares unequal, is an empty
  iterable, is a class nothing is an instance of, and raises TinygradStubUsed naming itself when a test calls or
  indexes it. So a test file collects, and only the tests that really use a missing name fail, each naming it.
  teeny's Device is wrapped the same way (what it lacks is a stub), because tinygrad's test files ask it for
  renderer details in skip conditions at their top.
"""
from __future__ import annotations
import ctypes, importlib, importlib.abc, importlib.machinery, os, sys, types

# tinygrad module -> teeny module. Anything under tinygrad not listed here has no teeny counterpart.
MODULE_MAP = {
  "tinygrad": "teeny",
  "tinygrad.tensor": "teeny.tensor",
  "tinygrad.nn": "teeny.nn",
  "tinygrad.nn.optim": "teeny.nn.optim",
  "tinygrad.nn.state": "teeny.nn.state",
  "tinygrad.helpers": "teeny.helpers",
  "tinygrad.dtype": "teeny.dtype",
  "tinygrad.engine": "teeny.engine",
  "tinygrad.engine.jit": "teeny.engine.jit",
  "tinygrad.device": "teeny.runtime.device",
}


def _to_np_dtype(dtype):
  """tinygrad's private dtype -> numpy dtype helper, spelled with teeny's own DType.np."""
  return None if dtype is None else dtype.np


def _prod(xs, start=1):
  """The product of xs (plain Python)."""
  for x in xs: start = start * x
  return start


def _all_same(items) -> bool:
  """Whether every item equals the first (plain Python)."""
  return all(item == items[0] for item in items)


def _temp(name: str, append_user: bool = False) -> str:
  """A path in the temp folder (plain Python)."""
  import tempfile
  return os.path.join(tempfile.gettempdir(), name)


# lenient mode's test-harness helpers: private, pure-Python helpers of tinygrad that its test files import to build
# their checks (not Tensor features). Given here so that a test is measured on teeny's tensors, not on whether
# teeny spells tinygrad's private helpers; each one is a rename of teeny's own or a few lines of plain Python.
HARNESS_HELPERS = {
  "tinygrad.tensor._to_np_dtype": _to_np_dtype, "tinygrad.dtype._to_np_dtype": _to_np_dtype,
  "tinygrad.helpers.prod": _prod, "tinygrad.helpers.all_same": _all_same, "tinygrad.helpers.temp": _temp,
  "tinygrad.helpers.all_int": lambda xs: all(isinstance(x, int) for x in xs),
  # the address of a memoryview's first byte (its tests pass it to Tensor.from_blob)
  "tinygrad.helpers.mv_address": lambda mv: ctypes.addressof(ctypes.c_char.from_buffer(mv)),
  "tinygrad.helpers.OSX": sys.platform == "darwin", "tinygrad.helpers.CI": os.environ.get("CI", "") != "",
  # tinygrad's device-target and debug settings, which its tests read to skip cases for mock or special devices:
  # here a plain target (no mock interface, no special renderer) and the DEBUG/IMAGE levels from the environment
  "tinygrad.helpers.DEV": types.SimpleNamespace(interface="", renderer="", arch="", device="", value=[]),
  "tinygrad.helpers.DEBUG": int(os.environ.get("DEBUG", "0") or 0),
  "tinygrad.helpers.IMAGE": int(os.environ.get("IMAGE", "0") or 0),
}
# packages (they have submodules) among the tinygrad names
PACKAGES = {"tinygrad", "tinygrad.nn", "tinygrad.engine"}


class TinygradStubUsed(Exception):
  """A test used a tinygrad name that teeny lacks (lenient mode only); the message is the dotted name."""


def lenient() -> bool:
  """Whether missing names and modules import as stubs (TGC_SHIM_MODE=lenient)."""
  return os.environ.get("TGC_SHIM_MODE", "strict") == "lenient"


class _StubMeta(type):
  """The behaviour of a stub: every use that needs the real thing raises TinygradStubUsed with the stub's name;
  uses that decorators and skip conditions make at import time (truth, equality, membership) answer 'no'."""
  def __getattr__(cls, name):
    if name.startswith("__"): raise AttributeError(name)
    return make_stub(f"{cls._stub_name}.{name}", cls._stub_root)
  def __call__(cls, *args, **kwargs): return _used(cls, "()")
  def __getitem__(cls, key): return _used(cls, "[]")
  def __bool__(cls): return False
  def __eq__(cls, other): return cls is other
  def __ne__(cls, other): return cls is not other
  def __hash__(cls): return id(cls)
  def __iter__(cls): return iter(())
  def __contains__(cls, item): return False
  def __len__(cls): return 0
  def __lt__(cls, other): return False
  def __le__(cls, other): return False
  def __gt__(cls, other): return False
  def __ge__(cls, other): return False
  def __repr__(cls): return f"<tinygrad stub {cls._stub_name}>"
  def __subclasscheck__(cls, subclass):
    # assertRaises(<a stub exception class>) asks this of the exception the test's code raised
    if IN_TEST[0]: raise TinygradStubUsed(cls._stub_root)
    return False


# set by the recording plugin while a test runs: a stub used then fails the test; one used while a test file is
# imported (a decorator's skip condition, a table of cases) gives another stub, so the file still collects
IN_TEST = [False]


def _used(stub: type, suffix: str):
  """What calling or indexing a stub gives: TinygradStubUsed inside a test (its message starts with the missing
  name the stub came from, then how it was reached), another stub outside one."""
  if IN_TEST[0]:
    used_as = "" if stub._stub_name == stub._stub_root else f" (used as {stub._stub_name})"
    raise TinygradStubUsed(stub._stub_root + used_as)
  return make_stub(stub._stub_name + suffix, stub._stub_root)


class _LenientProxy:
  """Lenient mode's wrapper of teeny's Device: what teeny has is forwarded (objects wrapped again), what it lacks
  is a stub named by the path to it (`Device[LLVM].renderer.supported_dtypes`), so a skip condition at the top of a
  test file that asks teeny's device for a tinygrad-only attribute does not stop the whole file collecting."""
  _PLAIN = (str, int, float, bool, bytes, type(None))

  def __init__(self, target, path: str):
    object.__setattr__(self, "_target", target)
    object.__setattr__(self, "_path", path)

  def _wrap(self, value, path: str):
    if isinstance(value, self._PLAIN) or isinstance(value, type): return value
    if isinstance(value, (tuple, list)) and all(isinstance(item, self._PLAIN) for item in value): return value
    return _LenientProxy(value, path)

  def __getattr__(self, name):
    target, path = object.__getattribute__(self, "_target"), object.__getattribute__(self, "_path")
    if hasattr(target, name): return self._wrap(getattr(target, name), f"{path}.{name}")
    if name.startswith("__"): raise AttributeError(name)
    return make_stub(f"{path}.{name}")

  def __setattr__(self, name, value): setattr(object.__getattribute__(self, "_target"), name, value)
  def __getitem__(self, key):
    target, path = object.__getattribute__(self, "_target"), object.__getattribute__(self, "_path")
    return self._wrap(target[key], f"{path}[{key}]")
  def __call__(self, *args, **kwargs):
    target, path = object.__getattribute__(self, "_target"), object.__getattribute__(self, "_path")
    return self._wrap(target(*args, **kwargs), f"{path}()")
  def __eq__(self, other): return object.__getattribute__(self, "_target") == other
  def __hash__(self): return hash(object.__getattribute__(self, "_target"))
  def __bool__(self): return bool(object.__getattribute__(self, "_target"))
  def __iter__(self): return iter(object.__getattribute__(self, "_target"))
  def __contains__(self, item): return item in object.__getattribute__(self, "_target")
  def __str__(self): return str(object.__getattribute__(self, "_target"))
  def __repr__(self): return repr(object.__getattribute__(self, "_target"))


def make_stub(dotted_name: str, root: str | None = None) -> type:
  """A stub standing for the missing tinygrad name `dotted_name`, reached from the missing name `root`."""
  short_name = dotted_name.rsplit(".", 1)[-1]
  # a missing exception class (JitError) is a stub that is also an exception class, so assertRaises accepts it
  bases = (Exception,) if short_name.endswith(("Error", "Exception")) else ()
  return _StubMeta(short_name, bases, {"_stub_name": dotted_name, "_stub_root": root or dotted_name})


class _TinygradModule(types.ModuleType):
  """The stand-in for one tinygrad module: attribute lookups go to its teeny module (None: no counterpart)."""
  def __init__(self, name: str, teeny_name: str | None):
    super().__init__(name)
    self.__dict__["_teeny_name"] = teeny_name

  def __getattr__(self, attr):
    if attr.startswith("__"): raise AttributeError(attr)
    submodule = f"{self.__name__}.{attr}"
    if submodule in MODULE_MAP: return importlib.import_module(submodule)
    teeny_name = self.__dict__["_teeny_name"]
    if teeny_name is not None:
      teeny_module = importlib.import_module(teeny_name)
      if hasattr(teeny_module, attr):
        value = getattr(teeny_module, attr)
        return _LenientProxy(value, attr) if attr == "Device" and lenient() else value
    if lenient() and submodule in HARNESS_HELPERS: return HARNESS_HELPERS[submodule]
    if lenient(): return make_stub(submodule)
    where = teeny_name or "no teeny module"
    raise AttributeError(f"module '{self.__name__}' ({where}) has no attribute '{attr}'")

  def __dir__(self):
    teeny_name = self.__dict__["_teeny_name"]
    return dir(importlib.import_module(teeny_name)) if teeny_name else []


class _Loader(importlib.abc.Loader):
  def create_module(self, spec): return _TinygradModule(spec.name, MODULE_MAP.get(spec.name))
  def exec_module(self, module):
    teeny_name = MODULE_MAP.get(module.__name__)
    if teeny_name is not None: importlib.import_module(teeny_name)  # an import error of teeny's own shows here


class TinygradFinder(importlib.abc.MetaPathFinder):
  """Finds `tinygrad` and `tinygrad.*` before any real tinygrad on sys.path."""
  def find_spec(self, fullname, path=None, target=None):
    if fullname != "tinygrad" and not fullname.startswith("tinygrad."): return None
    if fullname not in MODULE_MAP and not lenient(): return None  # internals: ModuleNotFoundError
    is_package = fullname in PACKAGES or fullname not in MODULE_MAP
    return importlib.machinery.ModuleSpec(fullname, _Loader(), is_package=is_package)


def install():
  """Put the finder first on sys.meta_path (once)."""
  if not any(isinstance(finder, TinygradFinder) for finder in sys.meta_path): sys.meta_path.insert(0, TinygradFinder())
