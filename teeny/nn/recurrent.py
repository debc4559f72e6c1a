"""Recurrent cells: LSTMCell and GRUCell, one time step each, with PyTorch's equations, parameter names
(weight_ih, weight_hh, bias_ih, bias_hh), gate order and initialization, so a torch state dict loads as it is.
They are exported as teeny.nn.LSTMCell and teeny.nn.GRUCell."""
from __future__ import annotations
import math
from teeny.tensor import Tensor


class _RNNCellBase:
  """The weights of a cell with `gates` gates stacked along axis 0 (PyTorch's layout): weight_ih (gates * hidden,
  input), weight_hh (gates * hidden, hidden) and two biases; all uniform(+-1/sqrt(hidden_size)), PyTorch's init."""
  gates = 1
  def __init__(self, input_size: int, hidden_size: int, bias: bool = True):
    for name, n in (("input_size", input_size), ("hidden_size", hidden_size)):
      if not isinstance(n, int) or n <= 0: raise ValueError(f"{type(self).__name__}: {name} must be a positive int, got {n!r}")
    self.input_size, self.hidden_size = input_size, hidden_size
    bound = 1 / math.sqrt(hidden_size)
    rows = self.gates * hidden_size
    self.weight_ih = Tensor.uniform(rows, input_size, low=-bound, high=bound)
    self.weight_hh = Tensor.uniform(rows, hidden_size, low=-bound, high=bound)
    self.bias_ih = Tensor.uniform(rows, low=-bound, high=bound) if bias else None
    self.bias_hh = Tensor.uniform(rows, low=-bound, high=bound) if bias else None

  def _batched(self, x: Tensor) -> Tensor:
    """x as (batch, input_size): a 1-D input (one sample, as PyTorch allows) gets a batch axis of 1."""
    if not isinstance(x, Tensor): raise TypeError(f"{type(self).__name__} takes a Tensor input, got {type(x).__name__}")
    if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
      raise ValueError(f"{type(self).__name__} with input_size {self.input_size} got an input of shape {x.shape}")
    return x.unsqueeze(0) if x.ndim == 1 else x

  def _state(self, state: Tensor | None, x: Tensor, unbatched: bool, name: str) -> Tensor:
    """A hidden or cell state as (batch, hidden_size): zeros when None, like PyTorch."""
    if state is None: return Tensor.zeros(x.shape[0], self.hidden_size, dtype=x.dtype, device=x.device)
    want = (self.hidden_size,) if unbatched else (x.shape[0], self.hidden_size)
    if state.shape != want: raise ValueError(f"{type(self).__name__}: {name} has shape {state.shape}, expected {want}")
    return state.unsqueeze(0) if unbatched else state

  def _gates(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
    """x @ weight_ih.T + bias_ih and h @ weight_hh.T + bias_hh, each (batch, gates * hidden)."""
    return x.linear(self.weight_ih.transpose(), self.bias_ih), h.linear(self.weight_hh.transpose(), self.bias_hh)


class LSTMCell(_RNNCellBase):
  """One LSTM step: `h, c = cell(x, (h, c))`, or `cell(x)` to start from zeros. Gates in PyTorch's order (input,
  forget, cell, output): i, f, o = sigmoid(...), g = tanh(...), c' = f * c + i * g, h' = o * tanh(c')."""
  gates = 4
  def __call__(self, x: Tensor, hc: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
    """One step: (h', c') from x, (batch, input_size) or unbatched (input_size,), and the state hc = (h, c)
    (zeros when None); the results have x's batching."""
    unbatched = x.ndim == 1
    x = self._batched(x)
    if hc is not None and (not isinstance(hc, (tuple, list)) or len(hc) != 2):
      raise TypeError(f"LSTMCell takes its state as a pair (h, c), got {type(hc).__name__}")
    h = self._state(None if hc is None else hc[0], x, unbatched, "h")
    c = self._state(None if hc is None else hc[1], x, unbatched, "c")
    from_x, from_h = self._gates(x, h)
    i, f, g, o = (from_x + from_h).chunk(4, dim=1)
    c_new = f.sigmoid() * c + i.sigmoid() * g.tanh()
    h_new = o.sigmoid() * c_new.tanh()
    return (h_new.squeeze(0), c_new.squeeze(0)) if unbatched else (h_new, c_new)


class GRUCell(_RNNCellBase):
  """One GRU step: `h = cell(x, h)`, or `cell(x)` to start from zeros. Gates in PyTorch's order (reset, update,
  new): r, z = sigmoid(x_r + h_r), sigmoid(x_z + h_z); n = tanh(x_n + r * h_n) (h_n with its bias, as PyTorch);
  h' = (1 - z) * n + z * h."""
  gates = 3
  def __call__(self, x: Tensor, hx: Tensor | None = None) -> Tensor:
    """One step: h' from x, (batch, input_size) or unbatched (input_size,), and the state hx (zeros when None);
    the result has x's batching."""
    unbatched = x.ndim == 1
    x = self._batched(x)
    h = self._state(hx, x, unbatched, "hx")
    from_x, from_h = self._gates(x, h)
    x_r, x_z, x_n = from_x.chunk(3, dim=1)
    h_r, h_z, h_n = from_h.chunk(3, dim=1)
    r, z = (x_r + h_r).sigmoid(), (x_z + h_z).sigmoid()
    n = (x_n + r * h_n).tanh()
    h_new = (1 - z) * n + z * h
    return h_new.squeeze(0) if unbatched else h_new
