"""Optimizers: SGD (momentum, Nesterov, weight decay), Adam, AdamW and LAMB, with PyTorch's update rules; LARS and
Muon, which PyTorch has not (Muon's torch.optim version differs) with tinygrad's; OptimizerGroup, several optimizers
stepped as one; and learning-rate schedules (LambdaLR, StepLR, CosineAnnealingLR) like torch.optim.lr_scheduler.
(Gradient clipping is teeny.nn.utils.clip_grad_norm_, where PyTorch has it.)

A step is lazy graph building plus two realizes. First the gradients (and, on the first step, the parameters and
the optimizer's state) are realized, so every update below reads plain buffers; with them the loss and every live
lazy tensor that reads the parameters (the logits a loop keeps), from the same forward pass, which would otherwise
run again just before the update overwrites the parameters those tensors read. Then each parameter and each piece
of state (momentum buffers, Adam's m and v, the step counter t) gets its new value with `assign`, and all of them
are realized together: one small elementwise kernel per assigned tensor. Realizing the gradients first keeps the
updates order-independent: no update kernel recomputes a gradient from a parameter another kernel has already
overwritten. The learning rate is a device tensor, so changing it (a schedule) doesn't recompile the kernels."""
from __future__ import annotations
import math
from collections.abc import MutableMapping
from typing import Iterable
import numpy as np
from teeny.dtype import dtypes
from teeny.tensor import Tensor
from teeny import program_order


def _is_number(value) -> bool:
  """An int or float, Python's or numpy's, and not a bool (a flag passed where a number goes)."""
  return not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))


def _check_learning_rate(value) -> None:
  """A learning rate is a number or a tensor of one element, as PyTorch asks: a tensor of several was
  broadcast, a rate per element of each parameter."""
  if isinstance(value, Tensor):
    if value.numel() != 1: raise ValueError(f"a learning rate Tensor must have 1 element, got shape {value.shape}")
    return
  if not _is_number(value):
    raise TypeError(f"the learning rate must be a number or a 1-element Tensor, got {value!r}")


class Optimizer:
  """Holds the parameters to update (those that require grad; ones left unset are set to require it, like
  tinygrad), the buffers (tensors given with requires_grad=False, like BatchNorm's running statistics) and the
  learning rate. Subclasses say how one parameter is updated in `_update`."""
  def __init__(self, params: Iterable[Tensor], lr: float | Tensor):
    params = list(params)
    for p in params:
      if not isinstance(p, Tensor): raise TypeError(f"optimizer parameters must be Tensors, got {type(p).__name__}")
      if p.requires_grad is not False and not dtypes.is_float(p.dtype):
        raise TypeError(f"optimizer parameters must be float tensors, got one of {p.dtype}")
      # unset: a parameter, as PyTorch's requires grad from the start (graphs built from it before pass it gradient)
      if p.requires_grad is None: p._set_requires_grad(True, constant_before=False)
    unique = list({id(p): p for p in params}.values())
    self.params = [p for p in unique if p.requires_grad]
    # not optimized, but realized at each step before the parameters change: an update of them the forward pass
    # left pending (BatchNorm's running mean) then reads the parameters that forward pass used
    self.buffers = [p for p in unique if not p.requires_grad]
    if not self.params: raise ValueError("optimizer got no parameters that require grad")
    self.device = self.params[0].device
    _check_learning_rate(lr)
    if not isinstance(lr, Tensor) and lr < 0: raise ValueError(f"learning rate must be >= 0, got {lr}")  # (PyTorch's check at construction only)
    # float64 where a parameter is (its device has float64 then): a float32 learning rate would round 0.1 for it
    self._lr_dtype = np.float64 if any(p.dtype == dtypes.float64 for p in self.params) else np.float32
    self.lr = lr
    self._state: list[Tensor] = []  # every state tensor, realized with the parameters on the first step

  @property
  def lr(self) -> Tensor:
    """The learning rate, a 0-d Tensor: `opt.lr.assign(...)` (tinygrad's schedules) or `opt.lr = 0.01` change it."""
    return self._lr_tensor
  @lr.setter
  def lr(self, value: float | Tensor):
    """A Tensor becomes the learning rate; a number is written into the one there is, so a TinyJit step that
    captured it reads the new value (a new tensor would leave the replays on the old one)."""
    _check_learning_rate(value)
    self._lr_number = None if isinstance(value, Tensor) else float(value)  # (param_groups gives it back as set)
    if isinstance(value, Tensor) or not hasattr(self, "_lr_tensor"):
      self._lr_tensor = value if isinstance(value, Tensor) else Tensor(np.array(value, dtype=self._lr_dtype), device=self.device)
    else:  # (through float32, or float64 for a float64 rate: a bfloat16 tensor's numpy dtype holds its bits)
      host = np.array(value, np.float64 if self._lr_tensor.dtype == dtypes.float64 else np.float32)
      self._lr_tensor.assign(Tensor(host, device=self._lr_tensor.device).cast(self._lr_tensor.dtype))

  @property
  def param_groups(self) -> list[ParamGroup]:
    """PyTorch's view of the settings: one group, a dict-like whose "lr" reads and writes the learning rate
    (`for g in opt.param_groups: g["lr"] = 0.01`, as PyTorch code sets schedules)."""
    return [ParamGroup(self)]

  def _zeros_like(self, p: Tensor) -> Tensor:
    t = Tensor.zeros(p.shape, dtype=p.dtype, device=p.device).clone()  # clone: a buffer of its own, never shared
    self._state.append(t)
    return t

  def _on(self, x: Tensor, p: Tensor) -> Tensor:
    """x (the learning rate or step counter, kept on the first parameter's device) where p lives."""
    return x.to(p.device) if x.device != p.device else x

  def zero_grad(self, set_to_none: bool = True):
    """Forget the gradients: the next backward() starts them afresh. set_to_none=False (PyTorch's option) keeps
    each gradient tensor and fills it with zeros instead."""
    for p in self.params:
      if set_to_none or p.grad is None: p.grad = None
      else: p.grad.assign(p.grad.zeros_like())

  def schedule_step(self) -> list[Tensor]:
    """Realize the gradients (and the buffers), build the lazy update and return the tensors it assigns, for the
    caller to realize, maybe with other work: `Tensor.realize_all(loss, *opt.schedule_step())`. The tensors that
    backward() was called on (the loss) are realized with the gradients, so the forward pass runs once and the
    loss is the one of the old parameters, as in PyTorch."""
    grads = [p.grad for p in self.params if p.grad is not None]
    if not grads: return []
    for p in self.params:
      if p.grad is not None and p.grad.shape != p.shape:
        raise RuntimeError(f"gradient of shape {p.grad.shape} for a parameter of shape {p.shape}")
    # before_writing: a live tensor computed from the parameters (the logits) is realized now, from the kernels of
    # the forward pass that runs here anyway, not by a second forward pass just before the update overwrites them
    # (and the writes the forward pass left pending: BatchNorm's running statistics, given the optimizer or not)
    Tensor.realize_all(*Tensor.take_backward_roots(), *grads, *self.buffers, *program_order.writes_to_run_now(), *self.params,
                       *self._state, self.lr, before_writing=tuple(self.params))
    with Tensor.no_grad():  # an update is not part of any gradient, as in PyTorch
      updated = self._step_shared()
      for i, p in enumerate(self.params):
        if p.grad is not None: updated += self._update(i, p, p.grad)
    return updated

  def step(self):
    """Update every parameter that has a gradient (PyTorch skips the others too), in a few kernels. A live lazy
    tensor computed from the parameters (the loss, the logits) keeps the value of the parameters before the step:
    it is realized with the gradients."""
    Tensor.realize_all(*self.schedule_step())

  def _lr(self, p: Tensor):
    """The learning rate for p's update: float64 for a float64 parameter, else float32 (as before any float64)."""
    lr = self._on(self.lr, p)
    dtype = dtypes.float64 if p.dtype == dtypes.float64 else dtypes.float32
    return lr if lr.dtype == dtype else lr.cast(dtype)

  def _step_shared(self) -> list[Tensor]:
    """Work done once per step for all parameters (the step counter): returns the tensors it assigns."""
    return []

  def _update(self, i: int, p: Tensor, g: Tensor) -> list[Tensor]:
    raise NotImplementedError


class SGD(Optimizer):
  """Stochastic gradient descent, PyTorch's rule (dampening 0): g += wd * p; b = momentum * b + g;
  g = g + momentum * b if nesterov else b; p -= lr * g. The first step's b is g itself, as b starts at zero."""
  def __init__(self, params, lr: float | Tensor = 0.001, momentum: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False):
    super().__init__(params, lr)
    if momentum < 0: raise ValueError(f"momentum must be >= 0, got {momentum}")
    if weight_decay < 0: raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    if not isinstance(nesterov, bool):  # (PyTorch's positional SGD(params, lr, momentum, dampening, weight_decay) lands here)
      raise TypeError(f"SGD's nesterov is a bool, got {nesterov!r}: the arguments after momentum are tinygrad's (weight_decay, "
                      "nesterov), not PyTorch's (dampening, weight_decay, nesterov): pass them by keyword")
    if nesterov and momentum == 0: raise ValueError("nesterov momentum needs momentum > 0")
    self.momentum, self.weight_decay, self.nesterov = momentum, weight_decay, nesterov
    self.b = [self._zeros_like(p) for p in self.params] if momentum else []

  def _update(self, i, p, g):
    if self.weight_decay: g = g + self.weight_decay * p
    out = []
    if self.momentum:
      b = self.b[i].assign(self.b[i] * self.momentum + g)
      g = g + self.momentum * b if self.nesterov else b
      out.append(b)
    return out + [p.assign(p - self._lr(p) * g)]


def _one_minus_pow(base: float, t: Tensor, dtype=dtypes.float32) -> Tensor:
  """1 - base**t for the step counter t, in dtype (float32, or float64 for a float64 parameter) without the
  cancellation 1 - 0.999**t suffers for small t (PyTorch computes it in float64): it is -expm1(t * ln(base)), by
  its Taylor series while t * ln(base) is small."""
  if base == 0: return t.full_like(1.0, dtype=dtype)
  x = t.cast(dtype) * math.log(base)
  if dtype == dtypes.float64: return -x.expm1()  # (float64's expm1: what the series below stands in for)
  series = x * (1 + x / 2 * (1 + x / 3 * (1 + x / 4 * (1 + x / 5 * (1 + x / 6 * (1 + x / 7 * (1 + x / 8)))))))
  return (x > -0.25).where(-series, 1 - x.exp())


class LAMB(Optimizer):
  """LAMB (You et al. 2019), and Adam/AdamW as special cases. m, v: Adam's moments with bias correction
  (PyTorch's order of operations); the update u = m_hat / (sqrt(v_hat) + eps) plus wd * p for decoupled decay,
  scaled by the trust ratio ||p|| / ||u|| (LAMB only). Adam's classic L2 decay (wd * p added to the gradient)
  is `decoupled=False`. The step counters t are one device tensor, an entry per parameter counting the steps
  that parameter took (PyTorch's state['step']: a parameter with no gradient on a step doesn't count it)."""
  def __init__(self, params, lr: float | Tensor = 0.001, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-6,
               weight_decay: float = 0.0, adam: bool = False, *, decoupled: bool = True):
    # (decoupled by keyword: tinygrad's LAMB takes device eighth, and LAMB(..., adam, None) turned decoupled off)
    super().__init__(params, lr)
    for name, b in (("b1", b1), ("b2", b2)):
      if not 0 <= b < 1: raise ValueError(f"{name} must be in [0, 1), got {b}")
    if eps < 0: raise ValueError(f"eps must be >= 0, got {eps}")
    if not _is_number(weight_decay):  # (tinygrad's Adam takes device sixth)
      raise TypeError(f"weight_decay must be a number, got {weight_decay!r}: tinygrad's Adam(params, lr, b1, b2, eps, "
                      "device) form doesn't apply here (the state lives on each parameter's device)")
    if weight_decay < 0: raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    self.b1, self.b2, self.eps, self.weight_decay, self.adam, self.decoupled = b1, b2, eps, weight_decay, adam, decoupled
    self.t = Tensor.zeros(len(self.params), dtype=dtypes.int32, device=self.device).clone()
    self._state.append(self.t)
    self.m = [self._zeros_like(p) for p in self.params]
    self.v = [self._zeros_like(p) for p in self.params]

  def _step_shared(self):
    took = [p.grad is not None for p in self.params]
    self.t.assign(self.t + (1 if all(took) else Tensor(took, device=self.device).cast(dtypes.int32)))
    return [self.t]

  def _update(self, i, p, g):
    if self.weight_decay and not self.decoupled: g = g + self.weight_decay * p
    m = self.m[i].assign(self.m[i] + (g - self.m[i]) * (1 - self.b1))  # PyTorch's lerp_(g, 1 - b1)
    v = self.v[i].assign(self.v[i] * self.b2 + (1 - self.b2) * g * g)
    t, lr = self._on(self.t[i], p), self._lr(p)
    bias1, bias2 = _one_minus_pow(self.b1, t, lr.dtype), _one_minus_pow(self.b2, t, lr.dtype)
    if self.adam:
      # PyTorch: p *= 1 - lr * wd (AdamW only); p -= lr / bias1 * (m / (sqrt(v) / sqrt(bias2) + eps))
      if self.weight_decay and self.decoupled: p = p * (1 - lr * self.weight_decay)
      return [m, v, self.params[i].assign(p - (lr / bias1) * (m / (v.sqrt() / bias2.sqrt() + self.eps)))]
    up = (m / bias1) / ((v / bias2).sqrt() + self.eps)
    if self.weight_decay and self.decoupled: up = up + self.weight_decay * p
    r1, r2 = p.square().sum().sqrt(), up.square().sum().sqrt()
    trust = (r1 > 0).where((r2 > 0).where(r1 / r2, 1.0), 1.0)
    return [m, v, p.assign(p - lr * trust * up)]


class Adam(LAMB):
  """Adam with PyTorch's rule; weight_decay is L2 decay added to the gradient, as in torch.optim.Adam. betas=(b1, b2)
  is PyTorch's spelling of b1 and b2 (tinygrad's)."""
  def __init__(self, params, lr: float | Tensor = 0.001, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0,
               *, betas: tuple[float, float] | None = None):
    b1, b2 = betas if betas is not None else (b1, b2)
    super().__init__(params, lr, b1, b2, eps, weight_decay, adam=True, decoupled=False)


class AdamW(LAMB):
  """Adam with decoupled weight decay (Loshchilov & Hutter), as torch.optim.AdamW: p *= 1 - lr * wd first. betas=(b1,
  b2) as in Adam."""
  def __init__(self, params, lr: float | Tensor = 0.001, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.01,
               *, betas: tuple[float, float] | None = None):
    b1, b2 = betas if betas is not None else (b1, b2)
    super().__init__(params, lr, b1, b2, eps, weight_decay, adam=True, decoupled=True)


def newton_schulz(g: Tensor, steps: int, coefficients: tuple[float, ...], eps: float = 1e-7) -> Tensor:
  """Tensor.newton_schulz of one matrix (teeny/ops/linalg.py)."""
  if g.ndim != 2: raise ValueError(f"newton_schulz takes a matrix, got shape {g.shape}")
  return g.newton_schulz(steps, coefficients, eps)


class LARS(Optimizer):
  """LARS (You et al. 2017, Layer-wise Adaptive Rate Scaling), tinygrad's rule and signature; PyTorch has no LARS.
  Per parameter: the trust ratio r = tcoef * ||p|| / (||g|| + wd * ||p||) (1 where either norm is 0; r = 1 when
  tcoef is 0); g += wd * p (pre_wd); classic: g *= r * lr before momentum; b = momentum * b + g;
  g = g + momentum * b if nesterov else b; with ns_coefficients, g is orthogonalized by newton_schulz (as a matrix
  of its first axis by the rest); not pre_wd: p *= 1 - wd * lr (decay after momentum, Muon's); not classic:
  g *= r * lr after momentum; p -= g. With tcoef=0, classic=False and pre_wd=True it is PyTorch's SGD."""
  def __init__(self, params, lr: float | Tensor = 0.001, momentum: float = 0.9, weight_decay: float = 1e-4, ns_steps: int = 0,
               ns_coefficients: tuple[float, ...] | None = None, nesterov: bool = False, classic: bool = True,
               pre_wd: bool = True, tcoef: float = 0.001):
    super().__init__(params, lr)
    if momentum < 0: raise ValueError(f"momentum must be >= 0, got {momentum}")
    if weight_decay < 0: raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    if nesterov and momentum == 0: raise ValueError("nesterov momentum needs momentum > 0")
    if ns_coefficients is not None and (len(ns_coefficients) == 0 or ns_steps < 0):
      raise ValueError(f"newton-schulz needs ns_steps >= 0 and at least one coefficient, got {ns_steps} and {ns_coefficients}")
    if ns_coefficients is not None and any(p.ndim == 0 for p in self.params):
      raise ValueError("newton-schulz orthogonalization needs parameters with at least one axis, got a scalar")
    self.momentum, self.weight_decay, self.ns_steps, self.ns_coefficients = momentum, weight_decay, ns_steps, ns_coefficients
    self.nesterov, self.classic, self.pre_wd, self.tcoef = nesterov, classic, pre_wd, tcoef
    self.b = [self._zeros_like(p) for p in self.params] if momentum else []

  def _trust_ratio(self, p: Tensor, g: Tensor):
    if self.tcoef == 0: return 1.0
    r1, r2 = p.square().sum().sqrt(), g.square().sum().sqrt()
    return (r1 > 0).where((r2 > 0).where(self.tcoef * r1 / (r2 + self.weight_decay * r1), 1.0), 1.0)

  def _update(self, i, p, g):
    lr, r = self._lr(p), self._trust_ratio(p, g)
    if self.pre_wd and self.weight_decay: g = g + self.weight_decay * p
    if self.classic: g = g * r * lr
    out = []
    if self.momentum:
      b = self.b[i].assign(self.momentum * self.b[i] + g)
      g = g + self.momentum * b if self.nesterov else b
      out.append(b)
    if self.ns_coefficients:
      g = newton_schulz(g.reshape(g.shape[0], -1), self.ns_steps, tuple(self.ns_coefficients)).reshape(g.shape)
    new_p = p * (1.0 - self.weight_decay * lr) if not self.pre_wd and self.weight_decay else p
    if not self.classic: g = g * r * lr
    return out + [p.assign(new_p - g)]


class Muon(LARS):
  """Muon (momentum orthogonalized by Newton-Schulz), tinygrad's rule and signature: b = momentum * b + g;
  u = g + momentum * b (nesterov) or b; u = newton_schulz(u as a matrix of its first axis by the rest);
  p *= 1 - lr * wd; p -= lr * u. torch.optim.Muon differs: its momentum is an average (b += (1 - momentum)(g - b)),
  it orthogonalizes in bfloat16, scales lr by the shape (adjust_lr_fn) and takes 2-D parameters only."""
  def __init__(self, params, lr: float | Tensor = 0.001, momentum: float = 0.95, weight_decay: float = 0.1, ns_steps: int = 5,
               ns_coefficients: tuple[float, ...] = (3.4445, -4.775, 2.0315), nesterov: bool = True):
    super().__init__(params, lr, momentum, weight_decay, ns_steps, ns_coefficients, nesterov, classic=False, pre_wd=False, tcoef=0.0)


class OptimizerGroup(Optimizer):
  """Several optimizers (say Muon for the matrices, AdamW for the rest) stepped and zero_grad'ed as one, like
  tinygrad's: `opt = OptimizerGroup(opt1, opt2); opt.zero_grad(); loss.backward(); opt.step()`. opt[i] is the i-th."""
  def __init__(self, *optimizers: Optimizer):  # (no Optimizer.__init__: the parts hold the parameters and state)
    if not optimizers: raise ValueError("OptimizerGroup needs at least one optimizer")
    for o in optimizers:
      if not isinstance(o, Optimizer): raise TypeError(f"OptimizerGroup takes optimizers, got {type(o).__name__}")
    self.optimizers = optimizers
    self.params = [p for o in optimizers for p in o.params]
    self.buffers = [b for o in optimizers for b in o.buffers]
    self.device = optimizers[0].device

  def __getitem__(self, i: int) -> Optimizer: return self.optimizers[i]
  def __len__(self) -> int: return len(self.optimizers)
  @property
  def param_groups(self) -> list[ParamGroup]:
    """One group per optimizer of the group (see Optimizer.param_groups)."""
    return [group for o in self.optimizers for group in o.param_groups]

  def zero_grad(self, set_to_none: bool = True):
    """zero_grad() of every optimizer in the group."""
    for o in self.optimizers: o.zero_grad(set_to_none)

  def schedule_step(self) -> list[Tensor]:
    """Every optimizer's lazy update. All the gradients are realized together first, so the forward and backward
    passes run once for the whole group, and no update can change a parameter another gradient still reads."""
    grads = [p.grad for p in self.params if p.grad is not None]
    if grads: Tensor.realize_all(*Tensor.take_backward_roots(), *grads, *self.buffers, *program_order.writes_to_run_now(),
                                 before_writing=tuple(self.params))
    return [t for o in self.optimizers for t in o.schedule_step()]


class ParamGroup(MutableMapping):
  """One of PyTorch's optimizer.param_groups, over a teeny optimizer: "params" and the settings by PyTorch's names
  ("lr", "momentum", "weight_decay", "nesterov", "betas", "eps" where the optimizer has them). "lr" reads the rate
  (from the device) and writes it into the optimizer's rate tensor, so TinyJit replays follow; the others are read
  only: they are constants of the compiled update kernels (make a new optimizer to change them)."""
  _NAMES = {"momentum": "momentum", "weight_decay": "weight_decay", "nesterov": "nesterov", "eps": "eps"}
  def __init__(self, optimizer: Optimizer): self.optimizer = optimizer

  def _settings(self) -> dict:
    """The settings, "lr" as None: it is read from the device only when asked for (_lr)."""
    o = self.optimizer
    out = {"params": o.params, "lr": None}
    out.update({name: getattr(o, attr) for name, attr in self._NAMES.items() if hasattr(o, attr)})
    if hasattr(o, "b1"): out["betas"] = (o.b1, o.b2)
    return out
  def _lr(self) -> float:
    """The rate: the number last set, where the tensor still holds it (0.1, not float32's 0.10000000149), else what
    it holds."""
    o = self.optimizer
    held = o.lr.numpy().reshape(-1)[0]
    same = o._lr_number is not None and np.array(o._lr_number, held.dtype) == held
    return o._lr_number if same else float(held)
  def __getitem__(self, key: str):
    settings = self._settings()
    if key not in settings: raise KeyError(f"{type(self.optimizer).__name__} has no setting {key!r}; it has {sorted(settings)}")
    return self._lr() if key == "lr" else settings[key]
  def __setitem__(self, key: str, value):
    if key != "lr": raise KeyError(f"param_groups' {key!r} is read only here (a constant of the compiled update): only 'lr' can change")
    self.optimizer.lr = value
  def __delitem__(self, key: str): raise KeyError(f"param_groups' settings can't be deleted ({key!r})")
  def __iter__(self): return iter(self._settings())
  def __len__(self) -> int: return len(self._settings())
  def __repr__(self) -> str: return f"ParamGroup({ {k: self[k] for k in self if k != 'params'} })"


class LRScheduler:
  """Sets the optimizer's learning rate for each epoch: call step() once per epoch after the optimizer's steps,
  like PyTorch. The rate is written into the optimizer's lr tensor, so the update kernels don't change. StepLR and
  CosineAnnealingLR go on from the current rate, as PyTorch's do (a rate set by hand between steps carries on)."""
  def __init__(self, optimizer: Optimizer):
    if not isinstance(optimizer.lr, Tensor): raise TypeError("the optimizer's lr must be a Tensor for a schedule to set it")
    self.optimizer, self.epoch = optimizer, 0
    self.base_lr = ParamGroup(optimizer)["lr"]  # (the number set, 0.1, where the tensor holds it in float32)
    self._set(self.get_lr())

  def get_lr(self) -> float:
    """The learning rate for the current epoch (self.epoch); each schedule defines it."""
    raise NotImplementedError
  def current_lr(self) -> float:
    """The optimizer's rate now (the number last set, as param_groups reads it: one read from the device)."""
    return ParamGroup(self.optimizer)["lr"]
  def get_last_lr(self) -> list[float]:
    """[the learning rate last set], a list like torch's get_last_lr (one parameter group here)."""
    return [self.last_lr]

  def step(self):
    """Advance one epoch and write that epoch's learning rate into the optimizer's lr tensor."""
    self.epoch += 1
    self._set(self.get_lr())

  def _set(self, lr: float):
    self.last_lr = lr
    lr_tensor = self.optimizer.lr
    if lr_tensor.shape == (): self.optimizer.lr = lr  # (the setter writes it into the tensor and remembers the number)
    else: lr_tensor.assign(Tensor(np.full(lr_tensor.shape, lr, dtype=lr_tensor.dtype.np), device=lr_tensor.device))


class LambdaLR(LRScheduler):
  """lr = base_lr * lr_lambda(epoch)."""
  def __init__(self, optimizer: Optimizer, lr_lambda):
    self.lr_lambda = lr_lambda
    super().__init__(optimizer)
  def get_lr(self) -> float:
    """base_lr * lr_lambda(epoch)."""
    return self.base_lr * self.lr_lambda(self.epoch)


class StepLR(LRScheduler):
  """lr *= gamma every step_size epochs (base_lr * gamma ** (epoch // step_size) when nobody else sets it)."""
  def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1):
    if step_size <= 0: raise ValueError(f"step_size must be positive, got {step_size}")
    self.step_size, self.gamma = step_size, gamma
    super().__init__(optimizer)
  def get_lr(self) -> float:
    """The current rate, times gamma at every step_size-th epoch."""
    lr = self.current_lr()
    return lr * self.gamma if self.epoch and self.epoch % self.step_size == 0 else lr


class CosineAnnealingLR(LRScheduler):
  """PyTorch's recursive form of lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2, which it
  equals when nobody else sets the rate (and which goes back up after T_max, as PyTorch's)."""
  def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0):
    if T_max <= 0: raise ValueError(f"T_max must be positive, got {T_max}")
    self.T_max, self.eta_min = T_max, eta_min
    super().__init__(optimizer)
  def get_lr(self) -> float:
    """This epoch's rate from the current one, by PyTorch's steps (the half period past T_max a jump up)."""
    lr, t, period = self.current_lr(), self.epoch, self.T_max
    if t == 0: return lr
    if (t - 1 - period) % (2 * period) == 0: return lr + (self.base_lr - self.eta_min) * (1 - math.cos(math.pi / period)) / 2
    ratio = (1 + math.cos(math.pi * t / period)) / (1 + math.cos(math.pi * (t - 1) / period))
    return ratio * (lr - self.eta_min) + self.eta_min
