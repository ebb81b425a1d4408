"""Platforms (`linux/arm64`, `linux/arm/v7`): parsing, naming, and whether a build needs QEMU.

The Docker SDK builds one platform per build (`platform=`, classic builder). A platform
other than the engine's own builds without help as long as no `RUN` step executes a
binary of that platform (`FROM scratch` + `COPY`, or `FROM <base>` + `COPY`). A `RUN`
for a foreign platform needs the kernel's binfmt_misc to hand the binary to QEMU
(`/proc/sys/fs/binfmt_misc/qemu-aarch64`, ...). `emulation_problem` says so before
the build starts instead of failing in the middle with "exec format error".
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ValueProblem

KNOWN_OS = ("linux", "windows")
KNOWN_ARCHITECTURES = ("amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64", "mips64le",
                       "loong64")
# Variants that mean "the default" of their architecture (containerd's normalisation).
DEFAULT_VARIANT = {"arm64": "v8", "arm": "v7", "amd64": "v1"}
VARIANTS = {"arm": ("v5", "v6", "v7", "v8"), "arm64": ("v8", "v9"), "amd64": ("v1", "v2", "v3", "v4")}

# For release.yml's JSON Schema; the loader gives the better messages.
PLATFORM_PATTERN = (rf"^(?:{'|'.join(KNOWN_OS)})/(?:{'|'.join(KNOWN_ARCHITECTURES)})"
                    r"(?:/v[0-9]+)?$")

# What people write, and what they mean (uname -m / Debian names -> OCI names).
ARCH_ALIASES = {
    "x86_64": ("amd64", None), "x86-64": ("amd64", None), "x64": ("amd64", None),
    "aarch64": ("arm64", None), "armv8": ("arm64", None), "armv8l": ("arm64", None),
    "armhf": ("arm", "v7"), "armv7": ("arm", "v7"), "armv7l": ("arm", "v7"),
    "armel": ("arm", "v6"), "armv6": ("arm", "v6"), "armv6l": ("arm", "v6"),
    "armv5": ("arm", "v5"), "armv5l": ("arm", "v5"),
    "i386": ("386", None), "i686": ("386", None), "x86": ("386", None),
    "ppc64el": ("ppc64le", None), "mips64el": ("mips64le", None), "loongarch64": ("loong64", None),
}

# Architecture -> QEMU's name for it (the binfmt_misc entry is qemu-<name>).
QEMU_NAMES = {"amd64": "x86_64", "arm64": "aarch64", "arm": "arm", "386": "i386",
              "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64", "mips64le": "mips64el",
              "loong64": "loongarch64"}
# Kernels of these architectures usually run those binaries without emulation.
NATIVE_COMPAT = {"amd64": ("386",), "arm64": ("arm",)}

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
QEMU_HINT = ("install QEMU binfmt handlers on the engine's host (`docker run --privileged --rm "
             "tonistiigi/binfmt --install {arch}`, or `apt-get install qemu-user-static "
             "binfmt-support`), or build {platform} on a native runner: `release build-push VERSION "
             "--platform {platform} --push-by-digest --metadata-file F` there, then `release "
             "manifest merge VERSION --from-metadata DIR`")


class PlatformError(ValueProblem):
    pass


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        return "/".join(x for x in (self.os, self.architecture, self.variant) if x)

    @property
    def slug(self) -> str:
        """For tags and file names: linux-arm64, linux-arm-v7."""
        return str(self).replace("/", "-")

    @property
    def normalized_variant(self) -> str | None:
        return self.variant or DEFAULT_VARIANT.get(self.architecture)

    def matches(self, other: "Platform") -> bool:
        """Same platform, with default variants filled in (linux/arm64 == linux/arm64/v8)."""
        return (self.os == other.os and self.architecture == other.architecture
                and self.normalized_variant == other.normalized_variant)

    def to_oci(self) -> dict:
        """The `platform` object of an index entry."""
        out = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        return out


def _suggest(text: str) -> str | None:
    parts = text.lower().split("/")
    if len(parts) == 1:
        arch, variant = ARCH_ALIASES.get(parts[0], (parts[0], None))
        if arch in KNOWN_ARCHITECTURES:
            return str(Platform("linux", arch, variant))
        return None
    os_name, arch = parts[0], parts[1]
    variant = parts[2] if len(parts) > 2 else None
    if arch in ARCH_ALIASES:
        arch, alias_variant = ARCH_ALIASES[arch]
        variant = variant or alias_variant
    if os_name in KNOWN_OS and arch in KNOWN_ARCHITECTURES:
        return str(Platform(os_name, arch, variant))
    return None


def parse_platform(text: str) -> Platform:
    """`os/arch[/variant]` with the OCI names; raises PlatformError with a suggestion."""
    if not isinstance(text, str) or not text.strip():
        raise PlatformError("a platform must be a non-empty string like linux/arm64")
    parts = text.split("/")
    suggestion = _suggest(text)
    hint = f"did you mean '{suggestion}'?" if suggestion and suggestion != text else None
    if len(parts) not in (2, 3) or not all(parts):
        raise PlatformError(f"'{text}' is not a platform: write os/architecture[/variant], "
                            f"e.g. linux/arm64", hint=hint)
    os_name, arch = parts[0], parts[1]
    variant = parts[2] if len(parts) == 3 else None
    if os_name not in KNOWN_OS:
        raise PlatformError(f"unknown operating system '{os_name}' in platform '{text}'",
                            hint=hint or f"known: {', '.join(KNOWN_OS)}")
    if arch not in KNOWN_ARCHITECTURES:
        raise PlatformError(f"unknown architecture '{arch}' in platform '{text}'",
                            hint=hint or f"known: {', '.join(KNOWN_ARCHITECTURES)}")
    if variant is not None and variant not in VARIANTS.get(arch, ()):
        allowed = VARIANTS.get(arch)
        raise PlatformError(f"unknown variant '{variant}' for {os_name}/{arch} in '{text}'",
                            hint=f"known variants of {arch}: {', '.join(allowed)}" if allowed
                            else f"{arch} has no variants: write {os_name}/{arch}")
    return Platform(os_name, arch, variant)


def from_engine(info: dict) -> Platform:
    """The engine's own platform from `docker info` (OSType, Architecture as uname -m says)."""
    os_name = (info.get("OSType") or "linux").lower()
    machine = (info.get("Architecture") or "").lower()
    arch, variant = ARCH_ALIASES.get(machine, (machine, None))
    if arch == "arm64":
        variant = None
    return Platform(os_name, arch or "amd64", variant)


def from_image_config(config: dict) -> Platform:
    """The platform an image says it is for (its config's os / architecture / variant)."""
    return Platform(str(config.get("os") or "linux"), str(config.get("architecture") or ""),
                    config.get("variant") or None)


def needs_emulation(target: Platform, native: Platform) -> bool:
    if target.os != native.os:
        return True
    if target.architecture == native.architecture:
        return False
    return target.architecture not in NATIVE_COMPAT.get(native.architecture, ())


# -- QEMU / binfmt_misc ------------------------------------------------------------------------

def binfmt_visible(root: Path = BINFMT_DIR) -> bool:
    """Is binfmt_misc mounted here, so that its entries say what the kernel can run?

    Not mounted (typical inside a container that talks to the host's engine) means we
    cannot tell, not that there is no handler: the check is skipped then, and a RUN step
    that fails with "exec format error" still gets the same explanation (engine.py).
    """
    return (root / "status").is_file()


def binfmt_handler(platform: Platform, root: Path = BINFMT_DIR) -> str | None:
    """The enabled binfmt_misc entry that runs `platform`'s binaries (qemu-aarch64...), or None."""
    name = QEMU_NAMES.get(platform.architecture)
    if not name:
        return None
    try:
        if (root / "status").read_text().strip() != "enabled":
            return None
        entries = sorted(os.listdir(root))
    except OSError:
        return None
    for entry in entries:
        if entry == f"qemu-{name}" or entry.startswith(f"qemu-{name}-"):
            try:
                first = (root / entry).read_text().splitlines()[:1]
            except OSError:
                continue
            if first == ["enabled"]:
                return entry
    return None


# -- Dockerfile: which stages run commands ------------------------------------------------------

_FROM_RE = re.compile(r"^FROM\s+(?P<args>.*)$", re.IGNORECASE)
_ESCAPE_RE = re.compile(r"^#\s*escape\s*=\s*(\S)", re.IGNORECASE)


@dataclass(frozen=True)
class RunStep:
    line: int
    stage: str
    native: bool          # the stage is FROM --platform=$BUILDPLATFORM: runs on the engine's own


def _instructions(text: str):
    """(line number, instruction text) with continuation lines joined and comments dropped."""
    escape = "\\"
    lines = text.splitlines()
    for line in lines[:5]:                 # parser directives come first
        m = _ESCAPE_RE.match(line.strip())
        if m:
            escape = m.group(1)
            break
        if line.strip() and not line.strip().startswith("#"):
            break
    current, start = "", 0
    heredoc: str | None = None
    for number, raw in enumerate(lines, 1):
        if heredoc is not None:             # RUN <<EOF ... EOF: the body is not instructions
            if raw.strip() == heredoc:
                heredoc = None
            continue
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue                         # comment lines inside a continuation
        if not current:
            start = number
        if stripped.endswith(escape):
            current += stripped[:-1] + " "
            continue
        current += stripped
        m = re.search(r"<<-?[\"']?([A-Za-z_][A-Za-z0-9_]*)[\"']?", current)
        if m and current.split(None, 1)[0].upper() in ("RUN", "COPY", "ADD"):
            heredoc = m.group(1)
        yield start, current
        current = ""
    if current:
        yield start, current


def dockerfile_runs(path: Path, target: str | None = None) -> list[RunStep]:
    """RUN steps of the stages the classic builder executes (all up to `target`, if given)."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return []
    runs: list[RunStep] = []
    stage, native, index = "", False, -1
    for number, instruction in _instructions(text):
        word = instruction.split(None, 1)[0].upper()
        if word == "FROM":
            if target is not None and stage.lower() == target.lower():
                break                        # the target stage is complete
            index += 1
            args = instruction.split()[1:]
            flags = [a for a in args if a.startswith("--")]
            rest = [a for a in args if not a.startswith("--")]
            native = any(f.lower().startswith("--platform=") and "buildplatform" in f.lower()
                         for f in flags)
            stage = rest[2] if len(rest) >= 3 and rest[1].upper() == "AS" else str(index)
        elif word == "RUN":
            runs.append(RunStep(number, stage, native))
    return runs


def emulation_problem(platforms, native: Platform, dockerfile: Path, target: str | None = None,
                      *, root: Path = BINFMT_DIR) -> tuple[str, str] | None:
    """(message, hint) when a foreign platform's RUN step would need QEMU that is not there."""
    foreign = [p for p in platforms if needs_emulation(p, native)]
    if not foreign:
        return None
    runs = [r for r in dockerfile_runs(dockerfile, target) if not r.native]
    if not runs:
        return None                          # COPY-only builds need no emulation
    if not binfmt_visible(root):
        return None                          # cannot tell from here
    missing = [p for p in foreign if binfmt_handler(p, root) is None]
    if not missing:
        return None
    first = missing[0]
    names = ", ".join(f"qemu-{QEMU_NAMES.get(p.architecture, p.architecture)}" for p in missing)
    message = (f"building {', '.join(map(str, missing))} on this {native} engine runs "
               f"{Path(dockerfile).name} line {runs[0].line} (RUN) under emulation, but no QEMU "
               f"binfmt handler is registered ({names} not found in {root})")
    hint = QEMU_HINT.format(arch=first.architecture, platform=first)
    return message, hint


def engine_is_local(env=None) -> bool:
    """Can this process see the engine's kernel (/proc)? Only for a local unix socket."""
    env = os.environ if env is None else env
    host = env.get("DOCKER_HOST") or ""
    return host == "" or host.startswith("unix://")


def dockerfile_has_scratch(path: Path, target: str | None = None) -> bool:
    """Does a stage the classic builder runs start `FROM scratch`?"""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return False
    stage, index = "", -1
    for _, instruction in _instructions(text):
        parts = instruction.split()
        if parts[0].upper() != "FROM":
            continue
        if target is not None and stage.lower() == target.lower():
            break
        index += 1
        rest = [a for a in parts[1:] if not a.startswith("--")]
        if rest and rest[0].lower() == "scratch":
            return True
        stage = rest[2] if len(rest) >= 3 and rest[1].upper() == "AS" else str(index)
    return False
