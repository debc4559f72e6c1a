"""Several devices in one process as a Tensor mixin, like tinygrad: shard (split along an axis over devices),
replicate (`to(devices)`), their in-place forms, and reading a sharded tensor back. A tensor on several devices has
a tuple of device names as its `device`; its node is a MULTI (teeny/multi.py, which also says how each op runs per
device). Every op works on it as on any tensor, gradients too; `.numpy()` gathers the shards."""
from __future__ import annotations
from typing import TYPE_CHECKING
import numpy as np
from teeny.uop import Ops
from teeny.runtime.device import Device
from teeny.schedule import is_realized
from teeny import multi
from teeny.ops.args import ArgumentError, _canon_axis
if TYPE_CHECKING:  # (typing.Self is Python 3.11; annotations are never evaluated here: __future__ annotations)
  from typing import Self


def canonical_device(device) -> str | tuple[str, ...]:
  """A device name in canonical form, or for several devices a tuple of them (each once)."""
  if type(device) is not tuple: return Device.canonicalize(device)
  names = tuple(Device.canonicalize(d) for d in device)
  if not names: raise ValueError("an empty tuple of devices")
  if len(set(names)) != len(names): raise ValueError(f"devices {device} name one device twice")
  return names


def first_device(device) -> str:
  """The device that stands for `device` where one is needed (its tuning, its dtype support): the first of several."""
  return device[0] if type(device) is tuple else device


class ShardingOps:
  """Tensor's ways onto several devices and back."""
  @property
  def device(self) -> str | tuple[str, ...]:
    """The device this tensor is on (a tuple of names: sharded or replicated). A view's is its base's: a base moved
    in place (to_, shard_, replace) takes the views made of it before along, as their nodes follow its node."""
    return self._device if self._base is None else self._base._device
  @device.setter
  def device(self, device: str | tuple[str, ...]):
    self._device = device
  def shard(self, devices: tuple[str, ...], axis: int | None = None) -> Self:
    """This tensor split along `axis` into consecutive blocks, one per device of `devices` (sizes differ by at most
    one), like tinygrad's shard; axis=None, the default as in tinygrad, puts all of it on each device (replicated:
    x.shard(devices) of a model's weights). Ops on the result run on every device at once, each on its block; a
    sum over the split axis adds the blocks' sums across the devices."""
    if isinstance(devices, str): raise TypeError(f"shard takes a tuple of devices, got the string {devices!r}: write ({devices!r},)")
    devices = canonical_device(tuple(devices))
    if axis is None: return self._to_devices(devices)
    if self.ndim == 0: raise ArgumentError("a 0-d tensor has no axis to shard: give axis=None to replicate it")
    axis = _canon_axis(axis, self.ndim)
    if self.shape[axis] < len(devices):
      raise ArgumentError(f"can't shard axis {axis} of size {self.shape[axis]} over {len(devices)} devices")
    whole = self if type(self.device) is str else self.to(self.device[0])  # (resharding: gathered first)
    out = whole._new(multi.shard(whole.contiguous().uop, whole.device, devices, axis))
    out.device = devices
    return out
  def shard_(self, devices: tuple[str, ...], axis: int | None = None) -> Self:
    """shard in place (tinygrad's shard_): this tensor becomes the sharded one. Returns self."""
    return self.replace(self.shard(devices, axis))
  def _to_devices(self, devices: tuple[str, ...]) -> Self:
    """A copy of the whole tensor on each of `devices` (to(devices)); a sharded one is gathered first."""
    if devices == self.device and multi.layout(self.uop, devices) is None: return self  # (already replicated)
    whole = self if type(self.device) is str else self.to(self.device[0])
    out = whole._new(multi.replicate(whole.contiguous().uop, whole.device, devices))
    out.device = devices
    return out
  def _gather_numpy(self) -> np.ndarray:
    """A sharded tensor's values on the host: each device's shard read and joined."""
    self.realize()
    node = self.uop
    if node.op is not Ops.MULTI or not is_realized(node):  # (a write still pending on a view of it)
      node = self.contiguous().realize().uop
    devices, axis = node.arg
    parts = [type(self)(shard, device=d).numpy() for shard, d in zip(node.src, devices)]
    return parts[0] if axis is None else np.concatenate(parts, axis=axis)
