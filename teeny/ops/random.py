"""Random numbers as a Tensor mixin: manual_seed, rand, randn, randint, uniform, normal, randperm, multinomial, and
the initializers built on them (scaled_uniform, glorot_uniform, kaiming_*).

Random numbers come from Threefry-2x32 (20 rounds, Salmon et al. 2011, as in JAX and tinygrad) computed on the
device with uint32 adds, shifts and xors. The counter is (element index, high word of the seed) and the key is
(low word of the seed, a call counter that advances on every draw), so two draws differ, a seed replays the same
stream, and every device gives the same bits. The key lives in a tiny device buffer rather than in the kernel
source, so each new draw of the same shape reuses the compiled kernel."""
from __future__ import annotations
import math, threading, weakref
from typing import TYPE_CHECKING
import numpy as np
from teeny.dtype import dtypes, to_dtype, check_fits, largest_below
from teeny.schedule import buffer_of
from teeny.ops.args import ArgumentError, _new_shape, _shape_arg, _int_arg
if TYPE_CHECKING:  # (typing.Self is Python 3.11; annotations are never evaluated here: __future__ annotations)
  from typing import Self

_rng_lock = threading.Lock()  # held while draws are taken from the generator (see RandomOps._take_draws)
# the key buffer of each random draw -> the draw's counter: TinyJit rewrites them on replay
rng_key_buffers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class RandomOps:
  """Tensor's random number generator and the tensors drawn from it."""
  # the generator's state, on this class (read through Tensor too: TinyJit reads Tensor._rng_counter)
  _seed: int = 0
  _rng_counter: int = 0
  @staticmethod
  def manual_seed(seed: int = 0):
    """Seed the generator (any int; 64 bits are used) and restart its stream."""
    with _rng_lock: RandomOps._seed, RandomOps._rng_counter = int(seed) % 2**64, 0
  @staticmethod
  def _threefry2x32(x0: Self, x1: Self, k0: Self, k1: Self) -> tuple[Self, Self]:
    """Threefry-2x32 with 20 rounds on uint32 tensors (uint32 math wraps mod 2**32)."""
    rotations = ((13, 15, 26, 6), (17, 29, 16, 24))
    ks = (k0, k1, k0 ^ k1 ^ 0x1BD11BDA)
    x0, x1 = x0 + ks[0], x1 + ks[1]
    for i in range(5):
      for r in rotations[i % 2]:
        x0 = x0 + x1
        x1 = ((x1 << r) | (x1 >> (32 - r))) ^ x0
      x0, x1 = x0 + ks[(i + 1) % 3], x1 + ks[(i + 2) % 3] + (i + 1)
    return x0, x1
  @staticmethod
  def _take_draws(n: int) -> int:
    """Take the generator's next n draws; returns the number of the first. At once, under a lock: two threads
    drawing together must not both get the same numbers."""
    with _rng_lock:
      first = RandomOps._rng_counter
      RandomOps._rng_counter = first + n
    return first
  @staticmethod
  def _rng_key(counter: int) -> np.ndarray:
    """The key words of draw number `counter` of the current seed (TinyJit rewrites key buffers with them)."""
    seed = RandomOps._seed
    return np.array([seed & 0xFFFFFFFF, counter & 0xFFFFFFFF, seed >> 32], dtype=np.uint32)
  @classmethod
  def _random_bits(cls, n: int, device=None) -> Self:
    """n random uint32s (shape (n,)) for the next draw of the generator."""
    counter = cls._take_draws(1)
    key = cls(cls._rng_key(counter), device=device)
    rng_key_buffers[buffer_of(key.uop)] = counter
    k0, k1, hi = key[0], key[1], key[2]
    half = (n + 1) // 2
    if half > 2**32:  # (a uint32 counter per pair of words: arange(half) named its dtype, not this call, in the error)
      raise ArgumentError(f"a random draw of {n} values is too many: teeny's generator makes at most 2**33 per call")
    x0, x1 = cls._threefry2x32(cls.arange(half, dtype=dtypes.uint32, device=device), hi, k0, k1)
    # interleave the two output words: bits[2i] = x0[i], bits[2i+1] = x1[i]
    bits = x0.reshape(half, 1).pad(((0, 0), (0, 1))) + x1.reshape(half, 1).pad(((0, 0), (1, 0)))
    return bits.reshape(2 * half).shrink(((0, n),))
  @classmethod
  def rand(cls, *shape, dtype=None, device=None, requires_grad=None) -> Self:
    """Uniform in [0, 1). float32 uses the top 24 bits of each random word, float16 the top 11 and float64 all 32,
    so every value is exact and 1.0 never appears."""
    shape, dt = _new_shape(shape), to_dtype(dtype) if dtype is not None else dtypes.default_float
    if not dtypes.is_float(dt): raise TypeError(f"rand makes floats, not {dt}")
    n, mbits = math.prod(shape), min(dtypes.finfo(dt)[1] + 1, 32)  # every value exact in dt, never 1.0
    if n == 0: return cls._as_leaf(cls.zeros(shape, dtype=dt, device=device), requires_grad)
    bits = cls._random_bits(n, device)
    compute = dtypes.float64 if dt == dtypes.float64 else dtypes.float32
    out = ((bits >> (32 - mbits)).cast(compute) * (2.0 ** -mbits)).cast(dt).reshape(shape)
    return cls._as_leaf(out, requires_grad)
  @classmethod
  def randn(cls, *shape, dtype=None, device=None, requires_grad=None) -> Self:
    """Standard normal by the Box-Muller transform of two uniforms (computed in float32, or float64 for float64)."""
    shape, dt = _new_shape(shape), to_dtype(dtype) if dtype is not None else dtypes.default_float
    u = cls.rand(2, *shape, dtype=dtypes.float64 if dt == dtypes.float64 else dtypes.float32, device=device)
    out = ((1 - u[0]).log() * -2).sqrt() * (u[1] * (2 * math.pi)).cos()  # 1-u is in (0, 1]: the log is finite
    return cls._as_leaf(out.cast(dt), requires_grad)
  @classmethod
  def randint(cls, *args, low=None, high=None, shape=None, size=None, dtype=None, device=None, requires_grad=None) -> Self:
    """Integers in [low, high); int32 by default (teeny's default int). Takes PyTorch's forms randint(high, size),
    randint(low, high, size) (size a tuple, or shape=/size= keywords) and tinygrad's randint(*shape, low=0, high=10).
    Drawn as 64 random bits mod the range, exact on every device (bias < range / 2**64; 32 bits gave the low third
    of randint(0, 10**9) 16% too many draws)."""
    shape = shape if shape is not None else size
    if shape is None and args and isinstance(args[-1], (tuple, list)): shape, args = args[-1], args[:-1]
    if shape is not None:  # PyTorch: the positional ints are (high,) or (low, high)
      if len(args) > 2: raise TypeError(f"randint takes (high, size) or (low, high, size), got {args} and size {shape}")
      if len(args) == 2: low, high = args
      elif len(args) == 1: low, high = (0, args[0]) if high is None else (args[0], high)
    else: shape = args  # tinygrad: the positional ints are the shape
    # (int() made 3.5 a bound of 3, silently)
    low, high = 0 if low is None else _int_arg(low, "randint's low"), 10 if high is None else _int_arg(high, "randint's high")
    if high <= low: raise ArgumentError(f"randint needs low < high, got low={low} high={high}")
    if high - low > 2**64: raise ArgumentError(f"randint range [{low}, {high}) is wider than 2**64")
    shape = _new_shape(shape if isinstance(shape, (tuple, list)) else (shape,))
    dt = to_dtype(dtype) if dtype is not None else dtypes.default_int
    check_fits([low, high - 1], dt)  # (as PyTorch: randint(0, 300, dtype=uint8) would wrap)
    n = math.prod(shape)
    if n == 0: return cls._as_leaf(cls.zeros(shape, dtype=dt, device=device), requires_grad)
    words = cls._random_bits(2 * n, device).cast(dtypes.uint64).reshape(n, 2)
    bits = (words[:, 0] << 32) | words[:, 1]
    r = bits if high - low == 2**64 else bits % (high - low)
    r = r + low % 2**64  # (low + r in uint64, which wraps by definition; its bits are the int64 result)
    out = r if dt == dtypes.uint64 else r.bitcast(dtypes.int64)
    return cls._as_leaf(out.cast(dt).reshape(shape), requires_grad)
  @classmethod
  def uniform(cls, *shape, low=0.0, high=1.0, dtype=None, device=None, requires_grad=None) -> Self:
    """Uniform in [low, high), high never drawn (as PyTorch's; a value that rounds to high is the dtype's largest one
    below it). An int dtype gives integers in [low, high), like tinygrad's (randint)."""
    dt = to_dtype(dtype) if dtype is not None else None
    if dt is not None and not dtypes.is_float(dt):
      if dt == dtypes.bool: raise TypeError("uniform can't make bools: use rand(...) < p")
      return cls._as_leaf(cls.randint(*shape, low=int(low), high=int(high), dtype=dt, device=device), requires_grad)
    dt = dt or dtypes.default_float
    out = (cls.rand(*shape, dtype=dt, device=device) * (high - low) + low).cast(dt)
    if high > low: out = out.minimum(largest_below(dt, high))
    return cls._as_leaf(out, requires_grad)
  @classmethod
  def normal(cls, *shape, mean=0.0, std=1.0, dtype=None, device=None, requires_grad=None) -> Self:
    """randn(*shape) * std + mean (tinygrad's normal; torch.normal takes mean and std first)."""
    out = cls.randn(*shape, dtype=dtype, device=device) * std + mean
    return cls._as_leaf(out.cast(dtype or dtypes.default_float), requires_grad)
  @classmethod
  def randperm(cls, n: int, device=None, dtype=None, requires_grad=None) -> Self:
    """A random permutation of 0 .. n-1 (int32 by default), like torch.randperm: random keys, argsorted (so it
    costs n^2 comparisons: fine for thousands, slow for a million)."""
    if not isinstance(n, int) or n < 0: raise ArgumentError(f"randperm needs a non-negative int, got {n!r}")
    dt = to_dtype(dtype) if dtype is not None else dtypes.default_int
    check_fits(n - 1, dt)  # (as PyTorch: randperm(300, dtype=uint8) would wrap)
    if n == 0: return cls._as_leaf(cls.zeros(0, dtype=dt, device=device), requires_grad)
    return cls._as_leaf(cls._random_bits(n, device).argsort().cast(dt), requires_grad)
  def multinomial(self, num_samples: int = 1, replacement: bool = False) -> Self:
    """Indices drawn with probability proportional to the (non-negative) weights in each row of self (1-D or
    2-D), like torch.multinomial (int32 here). With replacement: inverse CDF of uniforms. Without: the num_samples
    largest log(u) / w (exponential races; a zero weight is never drawn), which PyTorch samples the same way."""
    if self.ndim not in (1, 2): raise ArgumentError(f"multinomial needs 1-D or 2-D weights, got shape {self.shape}")
    n = self.shape[-1]
    if not isinstance(num_samples, int) or num_samples <= 0: raise ArgumentError(f"num_samples must be a positive int, got {num_samples!r}")
    if not replacement and num_samples > n:
      raise ArgumentError(f"multinomial can't draw {num_samples} samples without replacement from {n} categories")
    w = (self if self.ndim == 2 else self.unsqueeze(0))._float()
    rows = w.shape[0]
    if replacement:
      cdf = w.cumsum(1)
      u = type(self).rand(rows, num_samples, 1, device=self.device) * cdf[:, -1:].unsqueeze(1)
      drawn = (cdf.unsqueeze(1) <= u).cast(dtypes.int32).sum(-1, dtype=dtypes.int32).minimum(n - 1)
    else:
      race = (1 - type(self).rand(rows, n, device=self.device)).log() / w  # (1 - u is in (0, 1]: a finite log)
      drawn = (w > 0).where(race, -math.inf).topk(num_samples, dim=1)[1]
    return drawn if self.ndim == 2 else drawn.squeeze(0)
  @classmethod
  def scaled_uniform(cls, *shape, requires_grad: bool | None = None, **kw) -> Self:
    """Uniform in [-1, 1) scaled by numel ** -0.5 (tinygrad)."""
    out = cls.uniform(*shape, low=-1.0, high=1.0, **kw).mul(math.prod(_shape_arg(shape)) ** -0.5)
    return cls._as_leaf(out, requires_grad)
  @classmethod
  def glorot_uniform(cls, *shape, **kw) -> Self:
    """Xavier/Glorot uniform: bound sqrt(6 / (fan_in + fan_out)), with fan_out = shape[0] (tinygrad's convention)."""
    shape = _shape_arg(shape)
    bound = math.sqrt(6 / (shape[0] + math.prod(shape[1:])))
    return cls.uniform(*shape, low=-bound, high=bound, **kw)
  @classmethod
  def kaiming_uniform(cls, *shape, a: float = 0.01, **kw) -> Self:
    """He uniform with leaky-relu gain sqrt(2 / (1 + a^2)) and fan_in = prod(shape[1:]), like tinygrad/PyTorch (a
    fan_in of 0, nn.Linear(0, n)'s, makes an empty tensor: no bound to compute, as PyTorch's no-op)."""
    shape = _shape_arg(shape)
    fan_in = math.prod(shape[1:])
    bound = math.sqrt(3.0) * math.sqrt(2.0 / (1 + a ** 2)) / math.sqrt(fan_in) if fan_in else 0.0
    return cls.uniform(*shape, low=-bound, high=bound, **kw)
  @classmethod
  def kaiming_normal(cls, *shape, a: float = 0.01, **kw) -> Self:
    """He normal: std sqrt(2 / (1 + a^2)) / sqrt(fan_in), fan_in = prod(shape[1:]), like tinygrad's (torch's
    kaiming_normal_ defaults to a=0)."""
    shape = _shape_arg(shape)
    std = math.sqrt(2.0 / (1 + a ** 2)) / math.sqrt(math.prod(shape[1:])) if math.prod(shape[1:]) else 0.0
    return cls.normal(*shape, mean=0.0, std=std, **kw)
  def rand_like(self, **kw) -> Self:
    """rand in self's shape and device, and self's dtype if it is a float (else the default float), like
    torch.rand_like; dtype= and device= choose others."""
    dt = kw.pop("dtype", self.dtype if dtypes.is_float(self.dtype) else dtypes.default_float)
    return type(self).rand(*self.shape, dtype=dt, device=kw.pop("device", self.device), **kw)
  def randn_like(self, **kw) -> Self:
    """randn in self's shape and device, and self's dtype if it is a float (else the default float), like
    torch.randn_like; dtype= and device= choose others."""
    dt = kw.pop("dtype", self.dtype if dtypes.is_float(self.dtype) else dtypes.default_float)
    return type(self).randn(*self.shape, dtype=dt, device=kw.pop("device", self.device), **kw)
