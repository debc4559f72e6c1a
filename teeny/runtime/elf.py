"""Reading an ELF64 object file's symbol table: which symbols it needs from outside. The LLVM backend checks them
before loading a kernel, because MCJIT binds a missing symbol to address 0 and the first call would crash."""
from __future__ import annotations
import struct

_SHT_SYMTAB = 2  # section type of a symbol table
_SHN_UNDEF = 0  # section index of a symbol defined elsewhere


def undefined_symbols(obj: bytes) -> list[str]:
  """Names an ELF64 object file needs from outside (its SHN_UNDEF symbols); none for anything that isn't ELF64."""
  if obj[:4] != b"\x7fELF" or obj[4] != 2: return []
  shoff, = struct.unpack_from("<Q", obj, 0x28)
  shentsize, shnum = struct.unpack_from("<HH", obj, 0x3A)
  sections = [struct.unpack_from("<IIQQQQIIQQ", obj, shoff + i * shentsize) for i in range(shnum)]
  names = []
  for _, sh_type, _, _, off, size, link, _, _, entsize in sections:
    if sh_type != _SHT_SYMTAB: continue
    stroff = sections[link][4]  # the symbol names are in the string table section the symbol table links to
    for sym in range(off + entsize, off + size, entsize):  # entry 0 is the null symbol
      st_name, _, _, st_shndx = struct.unpack_from("<IBBH", obj, sym)
      if st_shndx == _SHN_UNDEF and st_name:
        names.append(obj[stroff + st_name:obj.index(b"\0", stroff + st_name)].decode())
  return names
