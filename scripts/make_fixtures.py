#!/usr/bin/env python3
"""The deterministic "Starfall" build fixtures: <out>/starfall/{1.0.0,1.1.0,1.2.0,1.3.0}.tar.

Uncompressed POSIX tar archives shaped like a small game: ELF-like executables, a mostly
incompressible asset pack, levels of mixed content, text configuration, an empty file,
empty directories and symlinks. Each version edits the one before as real patches do:
scattered byte edits, shifting insertions, renames, deletions, mode changes, replaced
and appended assets. All bytes come from fixed string seeds and all tar metadata is
fixed, so two runs write identical files (standard library only).

The tests pin these archives' chunk boundaries (``fixtures/builds/starfall/chunks.json``,
from ``pin_fixture_chunks.py``): a changed byte here is a change of the fixtures.

    python scripts/make_fixtures.py [--out DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import math
import os
import random
import struct
import sys
import tarfile
import zlib
from dataclasses import dataclass, field, replace

MTIME = 1700000000
GAME = "starfall"
VERSIONS = ("1.0.0", "1.1.0", "1.2.0", "1.3.0")


def rng_for(*parts: object) -> random.Random:
    """A random.Random seeded from a string (stable across runs and platforms)."""
    return random.Random("/".join(str(p) for p in parts))


# Build model


@dataclass(frozen=True)
class Entry:
    kind: str  # "file", "dir" or "symlink"
    data: bytes = b""
    mode: int = 0o644
    target: str = ""


def file_entry(data: bytes, executable: bool = False) -> Entry:
    return Entry("file", data, 0o755 if executable else 0o644)


def dir_entry() -> Entry:
    return Entry("dir", b"", 0o755)


def symlink_entry(target: str) -> Entry:
    return Entry("symlink", b"", 0o777, target)


@dataclass
class Build:
    entries: dict[str, Entry] = field(default_factory=dict)
    # Structured models kept alongside the bytes so later versions can
    # re-serialise them after an edit.
    models: dict[str, object] = field(default_factory=dict)

    def copy(self) -> "Build":
        return Build(dict(self.entries), dict(self.models))

    def move(self, src: str, dst: str) -> None:
        self.entries[dst] = self.entries.pop(src)
        if src in self.models:
            self.models[dst] = self.models.pop(src)

    def remove(self, path: str) -> None:
        del self.entries[path]
        self.models.pop(path, None)


# ELF-like binaries

NAMESPACES = ("Render Audio Physics Net UI Input Script Save AI Anim Terrain Particles Camera Assets "
              "Config").split()
VERBS = ("Update Init Shutdown Load Parse Apply Compute Flush Resolve Spawn Destroy Query Bind "
         "Unbind Submit Reset Tick Blend Sample Encode Decode Validate").split()
NOUNS = ("Frame Mesh Texture Buffer Entity Collider Packet Widget Shader Voice Channel Node Track "
         "State Queue Path Light Shadow Material Socket Emitter Bone Clip Sector Slot Handle Cache "
         "Pool").split()
ARG_CODES = ["v", "i", "f", "PKc", "RK7Vector3", "P6Entity", "j", "b", "d", "m"]


def mangled_name(rng: random.Random, project: str, used: set[str]) -> str:
    while True:
        ns = rng.choice(NAMESPACES)
        fn = rng.choice(VERBS) + rng.choice(NOUNS)
        if rng.random() < 0.3:
            fn += rng.choice(NOUNS)
        args = "".join(rng.choice(ARG_CODES) for _ in range(rng.randint(1, 3)))
        if "v" in args and args != "v":
            args = args.replace("v", "") or "v"
        name = f"_ZN{len(project)}{project}{len(ns)}{ns}{len(fn)}{fn}E{args}"
        if name not in used:
            used.add(name)
            return name


def gen_function(rng: random.Random, func_addr: int, all_funcs: list[int],
                 rodata_addr: int, rodata_len: int, n_insns: int) -> bytes:
    """Emit x86-64-flavoured machine code for one function."""
    out = bytearray()
    frame = rng.choice([0x18, 0x28, 0x38, 0x48, 0x58, 0x68, 0x88, 0xA8])
    # prologue: push rbp; mov rbp, rsp; push callee-saved; sub rsp, frame
    out += b"\x55\x48\x89\xe5"
    saved = rng.sample([3, 12, 13, 14, 15], rng.randint(0, 3))
    for r in saved:
        out += (b"\x41" if r >= 8 else b"") + bytes([0x50 + (r & 7)])
    out += b"\x48\x83\xec" + bytes([frame])

    def reg() -> int:
        return rng.choice([0, 0, 0, 1, 2, 3, 6, 7, 6, 7])

    def slot() -> int:
        return (256 - rng.randrange(8, frame + 8, 8)) & 0xFF

    for _ in range(n_insns):
        k = rng.random()
        addr = func_addr + len(out)
        if k < 0.16:  # mov reg, [rbp-disp8]
            out += bytes([0x48, 0x8B, 0x45 | (reg() << 3), slot()])
        elif k < 0.30:  # mov [rbp-disp8], reg
            out += bytes([0x48, 0x89, 0x45 | (reg() << 3), slot()])
        elif k < 0.38:  # mov reg, reg
            out += bytes([0x48, 0x89, 0xC0 | (reg() << 3) | reg()])
        elif k < 0.45:  # add/sub/cmp reg, imm8
            op = rng.choice([0xC0, 0xE8, 0xF8])
            out += bytes([0x48, 0x83, op | reg(), rng.choice([1, 2, 4, 8, 16, 0x20, rng.randrange(256)])])
        elif k < 0.52:  # test reg, reg ; jcc rel8
            r = reg()
            out += bytes([0x48, 0x85, 0xC0 | (r << 3) | r])
            out += bytes([rng.choice([0x74, 0x75, 0x7C, 0x7E, 0x7F]), rng.randrange(4, 0x40)])
        elif k < 0.62:  # call rel32 to another function
            target = rng.choice(all_funcs) if all_funcs else func_addr
            rel = (target - (addr + 5)) & 0xFFFFFFFF
            out += b"\xe8" + struct.pack("<I", rel)
        elif k < 0.69:  # lea reg, [rip + disp32] into .rodata
            target = rodata_addr + rng.randrange(0, max(1, rodata_len), 8)
            rel = (target - (addr + 7)) & 0xFFFFFFFF
            out += bytes([0x48, 0x8D, 0x05 | (reg() << 3)]) + struct.pack("<I", rel)
        elif k < 0.76:  # movss xmm, [rbp-disp8] / mulss / addss
            op = rng.choice([0x10, 0x11, 0x58, 0x59, 0x5C])
            out += bytes([0xF3, 0x0F, op, 0x45 | (rng.randrange(8) << 3), slot()])
        elif k < 0.81:  # mov reg, imm32
            imm = rng.choice([0, 1, 0xFFFFFFFF, rng.randrange(1 << 16), rng.randrange(1 << 32)])
            out += bytes([0xB8 | reg()]) + struct.pack("<I", imm)
        elif k < 0.86:  # mov reg, [reg + disp8] (struct field access)
            out += bytes([0x48, 0x8B, 0x40 | (reg() << 3) | rng.choice([0, 3, 7]),
                          rng.randrange(0, 0x80, 8)])
        elif k < 0.90:  # xor eax, eax
            out += b"\x31\xc0"
        elif k < 0.94:  # imul / shl / shr
            out += bytes([0x48, rng.choice([0xC1, 0xD1]), rng.choice([0xE0, 0xE8]) | reg()])
            if out[-2] == 0xC1:
                out.append(rng.randrange(1, 32))
        elif k < 0.97:  # jmp rel32 inside the function
            out += b"\xe9" + struct.pack("<i", rng.randrange(-0x200, 0x200))
        else:  # cmovcc
            out += bytes([0x48, 0x0F, rng.choice([0x44, 0x45, 0x4C, 0x4F]),
                          0xC0 | (reg() << 3) | reg()])

    # epilogue
    out += b"\x48\x83\xc4" + bytes([frame])
    for r in reversed(saved):
        out += (b"\x41" if r >= 8 else b"") + bytes([0x58 + (r & 7)])
    out += b"\x5d\xc3"
    # pad to 16 with int3 / multi-byte nops like a real linker
    pad = (-len(out)) % 16
    if pad:
        out += (b"\xcc" if rng.random() < 0.5 else b"\x90") * pad
    return bytes(out)


LOG_TEMPLATES = [
    "[%s] failed to load '%s' (err=%d)\n",
    "[%s] %s: %u bytes allocated\n",
    "assertion failed: %s (%s:%d)\n",
    "%s: invalid handle %08x\n",
    "[%s] frame %llu took %.3f ms\n",
    "[%s] connection to %s:%d lost\n",
    "could not open '%s': %s\n",
    "[%s] %s queue overflow (%d > %d)\n",
    "%s::%s() is deprecated, use %s instead\n",
    "[%s] shader '%s' compile error at line %d\n",
]
ASSET_DIRS = ["textures", "sounds", "meshes", "shaders", "maps", "ui", "fonts", "anims"]
ASSET_WORDS = ["hull", "engine", "cockpit", "nebula", "asteroid", "drone", "station",
               "laser", "shield", "thruster", "beacon", "cargo", "pilot", "radar",
               "debris", "planet", "ring", "comet", "turret", "hangar"]
ASSET_EXTS = {"textures": "dds", "sounds": "ogg", "meshes": "mdl", "shaders": "glsl",
              "maps": "lvl", "ui": "xml", "fonts": "ttf", "anims": "anm"}


@dataclass
class ElfModel:
    """Sections of an ELF-like image; serialised by elf_bytes()."""
    etype: int  # 2 = executable, 3 = shared object
    entry: int
    text: bytes
    rodata: bytes
    data: bytes
    symtab: bytes
    strtab: bytes


TEXT_OFF = 0x1000
SHSTRTAB = b"\0.text\0.rodata\0.data\0.symtab\0.strtab\0.shstrtab\0"


def _shname(name: str) -> int:
    return SHSTRTAB.index(name.encode() + b"\0")


def elf_bytes(m: ElfModel) -> bytes:
    """Serialise an ElfModel; headers are recomputed from section sizes."""
    def align(x: int, a: int) -> int:
        return (x + a - 1) // a * a

    base = 0x400000 if m.etype == 2 else 0
    text_off = TEXT_OFF
    ro_off = align(text_off + len(m.text), 0x1000)
    data_off = align(ro_off + len(m.rodata), 0x1000)
    sym_off = align(data_off + len(m.data), 8)
    str_off = sym_off + len(m.symtab)
    shs_off = str_off + len(m.strtab)
    sh_off = align(shs_off + len(SHSTRTAB), 8)

    sections = [
        # name, type, flags, off, size, link, info, align, entsize
        (0, 0, 0, 0, 0, 0, 0, 0, 0),
        (_shname(".text"), 1, 6, text_off, len(m.text), 0, 0, 16, 0),
        (_shname(".rodata"), 1, 2, ro_off, len(m.rodata), 0, 0, 32, 0),
        (_shname(".data"), 1, 3, data_off, len(m.data), 0, 0, 8, 0),
        (_shname(".symtab"), 2, 0, sym_off, len(m.symtab), 5, 1, 8, 24),
        (_shname(".strtab"), 3, 0, str_off, len(m.strtab), 0, 0, 1, 0),
        (_shname(".shstrtab"), 3, 0, shs_off, len(SHSTRTAB), 0, 0, 1, 0),
    ]
    phdrs = [
        # type, flags, offset, filesz, align
        (6, 4, 64, 56 * 4, 8),                         # PT_PHDR
        (1, 5, 0, ro_off, 0x1000),                      # PT_LOAD r-x
        (1, 4, ro_off, len(m.rodata), 0x1000),          # PT_LOAD r--
        (1, 6, data_off, len(m.data), 0x1000),          # PT_LOAD rw-
    ]
    ident = b"\x7fELF\x02\x01\x01\x00" + b"\0" * 8
    hdr = struct.pack("<16sHHIQQQIHHHHHH", ident, m.etype, 0x3E, 1, base + m.entry,
                      64, sh_off, 0, 64, 56, len(phdrs), 64, len(sections), 6)
    out = bytearray(hdr)
    for ptype, pflags, off, size, al in phdrs:
        out += struct.pack("<IIQQQQQQ", ptype, pflags, off, base + off, base + off,
                           size, size, al)
    # a .interp / build-id style note in the header page
    out += b"/lib64/ld-linux-x86-64.so.2\0"
    out += struct.pack("<III", 4, 20, 3) + b"GNU\0"
    out += hashlib.sha1(m.text[:4096] + m.rodata[:256]).digest()
    out += b"\0" * (text_off - len(out))
    out += m.text
    out += b"\0" * (ro_off - len(out))
    out += m.rodata
    out += b"\0" * (data_off - len(out))
    out += m.data
    out += b"\0" * (sym_off - len(out))
    out += m.symtab + m.strtab + SHSTRTAB
    out += b"\0" * (sh_off - len(out))
    for name, stype, flags, off, size, link, info, al, ent in sections:
        addr = base + off if flags & 2 else 0
        out += struct.pack("<IIQQQQIIQQ", name, stype, flags, addr, off, size,
                           link, info, al, ent)
    return bytes(out)


def gen_elf(seed: str, project: str, etype: int, target_size: int) -> ElfModel:
    rng = rng_for(seed)
    used: set[str] = set()

    # .rodata: log strings, asset paths, float lookup tables
    ro = bytearray()
    while len(ro) < target_size * 0.16:
        c = rng.random()
        if c < 0.45:
            s = rng.choice(LOG_TEMPLATES).replace("%s", rng.choice(NAMESPACES), 1)
            ro += s.encode() + b"\0"
        elif c < 0.85:
            d = rng.choice(ASSET_DIRS)
            name = "_".join(rng.choice(ASSET_WORDS) for _ in range(rng.randint(1, 3)))
            ro += f"{d}/{name}_{rng.randrange(100):02d}.{ASSET_EXTS[d]}".encode() + b"\0"
        else:
            n = rng.choice([16, 32, 64])
            ph = rng.random() * 6.28
            ro += b"".join(struct.pack("<f", math.sin(ph + i * 6.2831853 / n)) for i in range(n))
        ro += b"\0" * ((-len(ro)) % 8)
    rodata = bytes(ro)

    # .text: functions
    base = 0x400000 if etype == 2 else 0
    ro_addr_guess = base + TEXT_OFF + int(target_size * 0.62)
    text = bytearray()
    func_addrs: list[int] = []
    names: list[tuple[str, int, int]] = []
    while len(text) < target_size * 0.60:
        addr = TEXT_OFF + len(text)
        n = int(rng.lognormvariate(3.2, 0.7)) + 3
        body = gen_function(rng, base + addr, func_addrs[-400:], ro_addr_guess,
                            len(rodata), min(n, 400))
        func_addrs.append(base + addr)
        names.append((mangled_name(rng, project, used), addr, len(body)))
        text += body

    # .data: vtables (pointer arrays) and default parameter blocks
    data = bytearray()
    while len(data) < target_size * 0.05:
        if rng.random() < 0.6:
            for _ in range(rng.randint(4, 16)):
                data += struct.pack("<Q", rng.choice(func_addrs))
        else:
            data += struct.pack("<8f", *(round(rng.uniform(-4, 4), 2) for _ in range(8)))
            data += struct.pack("<4I", *(rng.choice([0, 1, 16, 256, 1024]) for _ in range(4)))

    # .symtab / .strtab
    strtab = bytearray(b"\0")
    symtab = bytearray(b"\0" * 24)
    for name, addr, size in names:
        off = len(strtab)
        strtab += name.encode() + b"\0"
        symtab += struct.pack("<IBBHQQ", off, 0x12, 0, 1, base + addr, size)

    return ElfModel(etype, TEXT_OFF, bytes(text), rodata, bytes(data),
                    bytes(symtab), bytes(strtab))


def fresh_code(seed: str, size: int, at_addr: int) -> bytes:
    """Newly compiled functions totalling roughly `size` bytes."""
    rng = rng_for(seed)
    out = bytearray()
    while len(out) < size:
        out += gen_function(rng, at_addr + len(out), [at_addr], at_addr + 0x40000, 0x4000,
                            rng.randint(20, 90))
    return bytes(out)


# Packed asset file


@dataclass(frozen=True)
class Blob:
    name: str
    kind: int  # 1 texture, 2 audio, 3 text
    data: bytes


PAK_ALIGN = 64


def texture_blob(name: str, size: int, gen: int = 0) -> Blob:
    rng = rng_for("pak", name, gen)
    # DDS-like header followed by block-compressed (effectively random) data
    w = h = 1 << rng.randint(8, 10)
    head = b"DDS " + struct.pack("<7I", 124, 0x1007, h, w, size - 128, 0, rng.randint(1, 10))
    head += b"\0" * (128 - len(head))
    return Blob(name, 1, head + rng.randbytes(size - 128))


def audio_blob(name: str, seconds: float, gen: int = 0) -> Blob:
    rng = rng_for("pak", name, gen)
    rate = 22050
    n = int(rate * seconds)
    freqs = [rng.uniform(110, 880) for _ in range(3)]
    amps = [rng.uniform(2000, 7000) for _ in range(3)]
    pcm = bytearray()
    for i in range(n):
        t = i / rate
        v = sum(a * math.sin(2 * math.pi * f * t) for a, f in zip(amps, freqs))
        v = int(v * (0.6 + 0.4 * math.sin(2 * math.pi * 0.5 * t))) + rng.randint(-24, 24)
        pcm += struct.pack("<h", max(-32768, min(32767, v)))
    head = b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVEfmt "
    head += struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
    head += b"data" + struct.pack("<I", len(pcm))
    return Blob(name, 2, head + bytes(pcm))


def shader_blob(name: str, gen: int = 0) -> Blob:
    rng = rng_for("pak", name, gen)
    lines = ["#version 330 core", "// " + name, ""]
    for i in range(rng.randint(6, 10)):
        lines.append(f"uniform {rng.choice(['vec3', 'vec4', 'mat4', 'float', 'sampler2D'])} "
                     f"u_{rng.choice(ASSET_WORDS)}{i};")
    for f in range(rng.randint(12, 20)):
        fn = rng.choice(VERBS).lower() + rng.choice(NOUNS)
        lines.append(f"\nvec4 {fn}(vec4 c, vec2 uv) {{")
        for _ in range(rng.randint(3, 9)):
            lines.append(f"    c.{rng.choice('rgba')} = clamp(c.{rng.choice('rgba')} * "
                         f"{rng.uniform(0, 2):.3f} + texture(u_tex, uv * {rng.randint(1, 8)}.0)."
                         f"{rng.choice('xyzw')}, 0.0, 1.0);")
        lines.append("    return c;\n}")
    lines.append("\nvoid main() {\n    gl_FragColor = vec4(1.0);\n}\n")
    return Blob(name, 3, "\n".join(lines).encode())


def pak_bytes(blobs: list[Blob]) -> bytes:
    """Header + index table + aligned blobs."""
    entry_fmt = "<48sQQII"  # name, offset, size, kind, crc32
    esize = struct.calcsize(entry_fmt)
    header_size = 32
    index_size = esize * len(blobs)
    off = header_size + index_size
    off += (-off) % PAK_ALIGN
    index = bytearray()
    body = bytearray()
    for b in blobs:
        index += struct.pack(entry_fmt, b.name.encode(), off + len(body), len(b.data),
                             b.kind, zlib.crc32(b.data))
        body += b.data
        body += b"\0" * ((-len(body)) % PAK_ALIGN)
    header = b"SPAK" + struct.pack("<IIIQQ", 2, len(blobs), header_size, off, 0)
    out = header + bytes(index)
    out += b"\0" * (off - len(out))
    return out + bytes(body)


def initial_pak() -> list[Blob]:
    rng = rng_for("pak-layout")
    blobs: list[Blob] = []
    tex_names = ["textures/hull_diffuse.dds", "textures/hull_normal.dds",
                 "textures/nebula_sky.dds", "textures/asteroid_a.dds",
                 "textures/station_interior.dds", "textures/ui_atlas.dds",
                 "textures/cockpit.dds", "textures/planet_surface.dds"]
    for n in tex_names:
        blobs.append(texture_blob(n, rng.randrange(130_000, 190_000, 16)))
    blobs.insert(3, audio_blob("sounds/engine_loop.wav", 3.0))
    blobs.insert(6, audio_blob("sounds/ambient_hum.wav", 2.2))
    blobs.insert(2, shader_blob("shaders/hull.frag"))
    blobs.append(shader_blob("shaders/post_bloom.frag"))
    return blobs


# Levels


@dataclass
class LevelModel:
    width: int
    height: int
    tiles: bytes
    decor: bytes
    entities: list[tuple]
    lightmap: bytes
    script: bytes


ENTITY_FMT = "<HHffff16s"
ENTITY_TYPES = ["drone", "turret", "crate", "beacon", "spawn", "door", "mine", "pilot", "light"]


def gen_level(name: str, lightmap_size: int) -> LevelModel:
    rng = rng_for("level", name)
    w = rng.choice([64, 80, 96, 112])
    h = rng.choice([64, 80, 96])
    # terrain: a smooth height field quantised into tile ids (runs of equal bytes)
    tiles = bytearray()
    row_h = [rng.uniform(0, 8) for _ in range(w)]
    for y in range(h):
        for x in range(w):
            row_h[x] = max(0.0, min(15.9, row_h[x] + rng.uniform(-0.6, 0.6)))
            if x:
                row_h[x] = 0.7 * row_h[x] + 0.3 * row_h[x - 1]
            tiles.append(int(row_h[x]))
    decor = bytearray(w * h)
    for _ in range(w * h // 12):
        decor[rng.randrange(w * h)] = rng.randint(1, 40)
    ents = []
    for i in range(rng.randint(120, 320)):
        t = rng.randrange(len(ENTITY_TYPES))
        ents.append((t, rng.choice([0, 0, 1, 2, 5]),
                     round(rng.uniform(0, w), 2), round(rng.uniform(0, h), 2),
                     round(rng.uniform(-2, 12), 1), rng.choice([0.0, 90.0, 180.0, 270.0])))
    lines = [f"# {name} triggers"]
    for i in range(rng.randint(30, 80)):
        lines.append(f"on_enter zone_{i} {{ spawn {rng.choice(ENTITY_TYPES)} "
                     f"{rng.randint(1, 6)} at {rng.randrange(w)},{rng.randrange(h)}; "
                     f"play \"sounds/{rng.choice(ASSET_WORDS)}.ogg\" }}")
    lightmap = b"LMZ1" + rng.randbytes(lightmap_size)
    return LevelModel(w, h, bytes(tiles), bytes(decor), ents, lightmap,
                      ("\n".join(lines) + "\n").encode())


def level_bytes(m: LevelModel) -> bytes:
    ent = b"".join(
        struct.pack(ENTITY_FMT, t, fl, x, y, z, rot, f"{ENTITY_TYPES[t]}_{i:03d}".encode())
        for i, (t, fl, x, y, z, rot) in enumerate(m.entities))
    sections = [m.tiles, m.decor, ent, m.lightmap, m.script]
    head_size = 4 + 4 + 8 + 4 + 8 * len(sections)
    offs = []
    off = head_size
    for s in sections:
        offs.append((off, len(s)))
        off += len(s)
    head = b"SFLV" + struct.pack("<HH", 3, 0) + struct.pack("<II", m.width, m.height)
    head += struct.pack("<I", len(m.entities))
    head += b"".join(struct.pack("<II", o, n) for o, n in offs)
    return head + b"".join(sections)


# Text files


def settings_ini(version: str, overrides: dict[tuple[str, str], str] | None = None,
                 extra: dict[str, list[tuple[str, str]]] | None = None) -> bytes:
    rng = rng_for("settings.ini")
    sections: dict[str, list[tuple[str, str]]] = {
        "Display": [("Width", "1920"), ("Height", "1080"), ("Fullscreen", "true"),
                    ("VSync", "true"), ("RefreshRate", "60"), ("FieldOfView", "90"),
                    ("Gamma", "1.0"), ("UIScale", "1.0")],
        "Graphics": [("Quality", "high"), ("TextureQuality", "high"),
                     ("ShadowQuality", "medium"), ("AntiAliasing", "TAA"),
                     ("Bloom", "true"), ("MotionBlur", "false"),
                     ("ViewDistance", "4000"), ("ParticleDensity", "0.8")],
        "Audio": [("MasterVolume", "0.8"), ("MusicVolume", "0.6"), ("EffectsVolume", "0.9"),
                  ("VoiceVolume", "1.0"), ("Device", "default"), ("SampleRate", "48000")],
        "Gameplay": [("Difficulty", "normal"), ("Subtitles", "true"), ("Language", "en"),
                     ("AutoSave", "true"), ("AutoSaveInterval", "300"), ("InvertY", "false"),
                     ("MouseSensitivity", "1.25"), ("CameraShake", "0.5")],
        "Network": [("Server", "play.starfall.example"), ("Port", "27015"),
                    ("Timeout", "30"), ("MaxPing", "250"), ("Region", "auto")],
    }
    # a long tail of tuning values, like shipped configs tend to have
    tuning = []
    for i in range(110):
        key = rng.choice(NOUNS) + rng.choice(["Scale", "Bias", "Limit", "Rate", "Weight"]) + str(i)
        tuning.append((key, f"{rng.uniform(0, 10):.3f}"))
    sections["Tuning"] = tuning
    for sec, items in (extra or {}).items():
        sections.setdefault(sec, []).extend(items)
    lines = [f"; Starfall {version} settings", "; Edit with care. Delete this file to restore defaults.", ""]
    for sec, items in sections.items():
        lines.append(f"[{sec}]")
        for k, v in items:
            lines.append(f"{k}={(overrides or {}).get((sec, k), v)}")
        lines.append("")
    return "\n".join(lines).encode()


def keybinds_cfg() -> bytes:
    binds = [
        ("W", "+forward"), ("S", "+back"), ("A", "+strafe_left"), ("D", "+strafe_right"),
        ("SPACE", "+boost"), ("LSHIFT", "+brake"), ("Q", "+roll_left"), ("E", "+roll_right"),
        ("R", "reload"), ("F", "interact"), ("TAB", "+scoreboard"), ("M", "toggle_map"),
        ("I", "toggle_inventory"), ("ESC", "menu"), ("F5", "quicksave"), ("F9", "quickload"),
        ("F12", "screenshot"), ("MOUSE1", "+fire_primary"), ("MOUSE2", "+fire_secondary"),
        ("MWHEELUP", "weapon_next"), ("MWHEELDOWN", "weapon_prev"), ("1", "weapon 1"),
        ("2", "weapon 2"), ("3", "weapon 3"), ("4", "weapon 4"), ("T", "chat"),
        ("Y", "chat_team"), ("V", "+voice"), ("C", "toggle_camera"), ("X", "+target_lock"),
        ("Z", "target_nearest"), ("G", "deploy_drone"), ("H", "+hail"), ("L", "toggle_lights"),
        ("P", "pause"), ("F1", "help"), ("`", "toggle_console"),
    ]
    lines = ["// Starfall key bindings", "// Format: bind <key> <command>", "unbindall", ""]
    lines += [f'bind "{k}" "{c}"' for k, c in binds]
    lines += ["", "// Gamepad", 'bind "PAD_A" "+boost"', 'bind "PAD_B" "+brake"',
              'bind "PAD_X" "interact"', 'bind "PAD_Y" "toggle_map"',
              'bind "PAD_LT" "+fire_secondary"', 'bind "PAD_RT" "+fire_primary"',
              'bind "PAD_START" "menu"', "", "sensitivity 1.25", "m_filter 0", "joy_deadzone 0.15", ""]
    return "\n".join(lines).encode()


README_BASE = """\
STARFALL
========

Version {version}

Starfall is a small space exploration game. Fly between stations, trade cargo,
and survive the asteroid belts of the Kepra system.

Requirements
------------
- 64-bit Linux with glibc 2.31 or newer
- OpenGL 3.3 capable graphics card
- 2 GB RAM, 150 MB free disk space

Running
-------
Start the game with ./launch.sh (or ./starfall.sh). Settings are stored in
config/settings.ini and key bindings in config/keybinds.cfg. Saved games are
written to the saves/ directory.

Command line options
--------------------
  --windowed        start in a window instead of fullscreen
  --level NAME      load a level directly (for example: level01)
  --no-audio        disable sound output
  --log FILE        write the engine log to FILE

Known issues
------------
- Alt+Tab in fullscreen mode can leave the mouse cursor visible.
- Some integrated GPUs show flickering shadows on "high" shadow quality.
"""

CHANGELOG_110 = """
Changes in 1.1.0
----------------
- New level: Derelict Station (level06).
- Replaced the hull normal map with a higher quality version.
- Added a new engine sound for the cargo hauler.
- Fixed a crash when loading a save made during a docking sequence.
- Default view distance increased to 6000.
"""


def license_txt() -> bytes:
    text = """\
STARFALL END USER LICENSE

Copyright (c) 2023 Kepra Interactive. All rights reserved.

1. Grant. You may install and play this copy of Starfall on computers you own
   or control, for personal, non-commercial entertainment.

2. Restrictions. You may not sell, rent or sublicense the game. You may not
   redistribute the game files except through the official update mechanism.
   Modifications placed in the mods/ directory are permitted for personal use.

3. Ownership. The game, including its code, artwork, music and text, remains
   the property of Kepra Interactive and its licensors.

4. No warranty. The game is provided "as is", without warranty of any kind.
   Kepra Interactive is not liable for any damages arising from its use.

5. Termination. This license ends automatically if you break its terms. On
   termination you must delete all copies of the game.

Third-party components are listed in the credits screen of the game.
"""
    return text.encode()


LAUNCH_SH = """\
#!/bin/sh
# Starfall launcher: sets up the library path and starts the game.
set -e
HERE="$(cd "$(dirname "$0")" && pwd)"
export LD_LIBRARY_PATH="$HERE/bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
cd "$HERE"
if [ ! -d saves ]; then
    mkdir -p saves
fi
exec "$HERE/bin/starfall" --data "$HERE/data" "$@"
"""

LANG_KEYS = [
    ("menu.new_game", "New game", "Новая игра"),
    ("menu.continue", "Continue", "Продолжить"),
    ("menu.load", "Load game", "Загрузить игру"),
    ("menu.settings", "Settings", "Настройки"),
    ("menu.quit", "Quit", "Выход"),
    ("menu.quit_confirm", "Are you sure you want to quit?", "Вы уверены, что хотите выйти?"),
    ("hud.shield", "Shield", "Щит"),
    ("hud.hull", "Hull", "Корпус"),
    ("hud.fuel", "Fuel", "Топливо"),
    ("hud.cargo", "Cargo: {0}/{1} t", "Груз: {0}/{1} т"),
    ("hud.target_locked", "Target locked", "Цель захвачена"),
    ("hud.docking", "Docking permission granted", "Разрешение на стыковку получено"),
    ("msg.saved", "Game saved", "Игра сохранена"),
    ("msg.low_fuel", "Warning: fuel is low", "Внимание: мало топлива"),
    ("msg.incoming", "Incoming transmission from {0}", "Входящее сообщение от {0}"),
    ("msg.destroyed", "Your ship has been destroyed", "Ваш корабль уничтожен"),
    ("settings.graphics", "Graphics", "Графика"),
    ("settings.audio", "Audio", "Звук"),
    ("settings.controls", "Controls", "Управление"),
    ("settings.language", "Language", "Язык"),
    ("level.level01", "Kepra Belt", "Пояс Кепры"),
    ("level.level02", "Arena of Echoes", "Арена отголосков"),
    ("level.level04", "Frozen Moon", "Ледяная луна"),
    ("level.level05", "Station Omega", "Станция «Омега»"),
    ("level.level06", "Derelict Station", "Заброшенная станция"),
    ("tip.boost", "Hold SPACE to boost. Boosting drains fuel.",
     "Удерживайте ПРОБЕЛ для ускорения. Ускорение расходует топливо."),
    ("tip.dock", "Approach a station slowly and press F to request docking.",
     "Медленно приблизьтесь к станции и нажмите F, чтобы запросить стыковку."),
    ("tip.trade", "Prices differ between stations: buy low, sell high.",
     "Цены на станциях отличаются: покупайте дёшево, продавайте дорого."),
]


def lang_txt(lang: str) -> bytes:
    idx = 1 if lang == "en" else 2
    header = "# Starfall — English strings" if lang == "en" else "# Starfall — русские строки"
    lines = [header, f"language = {lang}", ""]
    lines += [f"{k[0]} = {k[idx]}" for k in LANG_KEYS]
    return ("\n".join(lines) + "\n").encode("utf-8")


# Versions


def build_100() -> Build:
    b = Build()
    starfall = gen_elf("bin/starfall", "Starfall", 2, 400_000)
    engine = gen_elf("bin/libengine.so", "Engine", 3, 300_000)
    b.models["bin/starfall"] = starfall
    b.models["bin/libengine.so"] = engine
    b.entries["bin/starfall"] = file_entry(elf_bytes(starfall), executable=True)
    b.entries["bin/libengine.so"] = file_entry(elf_bytes(engine), executable=True)

    pak = initial_pak()
    b.models["data/assets.pak"] = pak
    b.entries["data/assets.pak"] = file_entry(pak_bytes(pak))

    for i, lm in zip(range(1, 6), [14_000, 40_000, 6_000, 52_000, 24_000]):
        path = f"data/levels/level{i:02d}.dat"
        model = gen_level(f"level{i:02d}", lm)
        b.models[path] = model
        b.entries[path] = file_entry(level_bytes(model))

    b.entries["config/settings.ini"] = file_entry(settings_ini("1.0.0"))
    b.entries["config/keybinds.cfg"] = file_entry(keybinds_cfg())
    b.entries["README.txt"] = file_entry(README_BASE.format(version="1.0.0").encode())
    b.entries["LICENSE.txt"] = file_entry(license_txt())
    b.entries["data/empty.flag"] = file_entry(b"")
    b.entries["saves"] = dir_entry()
    b.entries["starfall.sh"] = symlink_entry("bin/starfall")
    b.entries["launch.sh"] = file_entry(LAUNCH_SH.encode(), executable=True)
    return b


def build_110(prev: Build) -> Build:
    b = prev.copy()

    # bin/starfall: scattered small edits plus new code inserted mid-.text
    m: ElfModel = b.models["bin/starfall"]  # type: ignore[assignment]
    rng = rng_for("patch", "1.1.0", "bin/starfall")
    text = bytearray(m.text)
    n = len(text)
    for i in range(8):
        start = int(n * (i + 0.5) / 9) + rng.randrange(-2000, 2000)
        length = rng.randint(16, 48)
        text[start:start + length] = fresh_code(f"patch/1.1.0/bin/starfall/edit{i}", length,
                                                0x400000 + TEXT_OFF + start)[:length]
    mid = (n // 2) & ~0xF
    text[mid:mid] = fresh_code("patch/1.1.0/bin/starfall/insert", 3000, 0x400000 + TEXT_OFF + mid)
    m = replace(m, text=bytes(text))
    b.models["bin/starfall"] = m
    b.entries["bin/starfall"] = file_entry(elf_bytes(m), executable=True)

    # data/assets.pak: one blob replaced (different size), one appended
    pak: list[Blob] = list(b.models["data/assets.pak"])  # type: ignore[arg-type]
    idx = next(i for i, x in enumerate(pak) if x.name == "textures/hull_normal.dds")
    pak[idx] = texture_blob("textures/hull_normal.dds", len(pak[idx].data) + 8_192, gen=1)
    pak.append(audio_blob("sounds/hauler_engine.wav", 1.5))
    b.models["data/assets.pak"] = pak
    b.entries["data/assets.pak"] = file_entry(pak_bytes(pak))

    b.entries["config/settings.ini"] = file_entry(settings_ini(
        "1.1.0",
        overrides={("Graphics", "ViewDistance"): "6000", ("Audio", "MusicVolume"): "0.5"},
        extra={"Gameplay": [("DockingAssist", "true")]}))

    model = gen_level("level06", 30_000)
    b.models["data/levels/level06.dat"] = model
    b.entries["data/levels/level06.dat"] = file_entry(level_bytes(model))

    b.entries["README.txt"] = file_entry(
        (README_BASE.format(version="1.1.0") + CHANGELOG_110).encode())
    return b


def build_120(prev: Build) -> Build:
    b = prev.copy()
    b.move("data/levels/level02.dat", "data/levels/arena02.dat")
    b.move("LICENSE.txt", "docs/LICENSE.txt")
    b.remove("data/levels/level03.dat")

    # bin/libengine.so: new code inserted near the start of .text
    m: ElfModel = b.models["bin/libengine.so"]  # type: ignore[assignment]
    at = 0x600
    text = m.text[:at] + fresh_code("patch/1.2.0/libengine.so/insert", 2048, TEXT_OFF + at) + m.text[at:]
    m = replace(m, text=text)
    b.models["bin/libengine.so"] = m
    b.entries["bin/libengine.so"] = file_entry(elf_bytes(m), executable=True)

    b.entries["data/lang/en.txt"] = file_entry(lang_txt("en"))
    b.entries["data/lang/ru.txt"] = file_entry(lang_txt("ru"))
    assert b.entries["data/empty.flag"].data == b""
    return b


def build_130(prev: Build) -> Build:
    b = prev.copy()

    # data/assets.pak: every other blob replaced with new content
    pak: list[Blob] = list(b.models["data/assets.pak"])  # type: ignore[arg-type]
    rng = rng_for("patch", "1.3.0", "assets.pak")
    for i in range(0, len(pak), 2):
        old = pak[i]
        if old.kind == 1:
            size = max(4096, len(old.data) + rng.randrange(-20_000, 20_000, 16))
            pak[i] = texture_blob(old.name, size, gen=3)
        elif old.kind == 2:
            pak[i] = audio_blob(old.name, (len(old.data) - 44) / 44100 * rng.uniform(0.8, 1.1), gen=3)
        else:
            pak[i] = shader_blob(old.name, gen=3)
    b.models["data/assets.pak"] = pak
    b.entries["data/assets.pak"] = file_entry(pak_bytes(pak))

    # level04 moved to data/maps/map04.dat with three entities nudged
    b.move("data/levels/level04.dat", "data/maps/map04.dat")
    lv: LevelModel = b.models["data/maps/map04.dat"]  # type: ignore[assignment]
    ents = list(lv.entities)
    for i in (5, 17, 42):
        t, fl, x, y, z, rot = ents[i]
        ents[i] = (t, fl, x + 1.5, y, z, rot)
    lv = replace(lv, entities=ents)
    b.models["data/maps/map04.dat"] = lv
    b.entries["data/maps/map04.dat"] = file_entry(level_bytes(lv))

    launch = b.entries["launch.sh"]
    b.entries["launch.sh"] = replace(launch, mode=0o644)
    b.entries["docs/readme"] = symlink_entry("../README.txt")
    b.entries["mods"] = dir_entry()
    return b


def all_builds() -> dict[str, Build]:
    v100 = build_100()
    v110 = build_110(v100)
    v120 = build_120(v110)
    v130 = build_130(v120)
    return {"1.0.0": v100, "1.1.0": v110, "1.2.0": v120, "1.3.0": v130}


# Tar output


def tar_bytes(build: Build) -> bytes:
    entries = dict(build.entries)
    # implicit parent directories
    for path in list(entries):
        parts = path.split("/")
        for i in range(1, len(parts)):
            entries.setdefault("/".join(parts[:i]), dir_entry())

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT,
                      encoding="utf-8") as tf:
        for path in sorted(entries):
            e = entries[path]
            ti = tarfile.TarInfo(path)
            ti.mtime = MTIME
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = ""
            ti.mode = e.mode
            if e.kind == "dir":
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            elif e.kind == "symlink":
                ti.type = tarfile.SYMTYPE
                ti.linkname = e.target
                tf.addfile(ti)
            else:
                ti.type = tarfile.REGTYPE
                ti.size = len(e.data)
                tf.addfile(ti, io.BytesIO(e.data))
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=None,
                    help="output directory (default: fixtures/builds in the repository)")
    args = ap.parse_args(argv)
    if args.out is None:
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        args.out = os.path.join(repo, "fixtures", "builds")

    out_dir = os.path.join(args.out, GAME)
    os.makedirs(out_dir, exist_ok=True)
    for version, build in all_builds().items():
        data = tar_bytes(build)
        path = os.path.join(out_dir, f"{version}.tar")
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        print(f"{hashlib.sha256(data).hexdigest()}  {len(data):>9}  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
