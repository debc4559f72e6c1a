"""Runs at interpreter start when this folder is on PYTHONPATH: installs the tinygrad -> teeny import shim."""
import tinygrad_compat_shim

tinygrad_compat_shim.install()
