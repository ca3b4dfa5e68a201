#!/usr/bin/env python3
"""Compares where two processes spend their CPU, from inferno's folded stacks
(`scripts/profile.sh` writes target/profile/<target>/folded.txt), in µs per request.

    scripts/perf-compare.py target/profile/service/folded.txt 226.1 \\
                            target/profile/reference/folded.txt 106.6

Each pair is a folded-stacks file and that process's server CPU per request from the same kind
of run (loadgen's report). Each sample goes to one layer: the innermost frame, walking from the
leaf towards the root, that belongs to a known layer (so the allocator called by h2 counts as
the allocator, and a `write` system call made for the log line counts as "kernel: log line").
Kernel frames are split by the layer of the user-space frame that entered the kernel.
"""
import collections
import sys

# (layer, substrings of a frame's name), checked in this order for each frame.
LAYERS = [
    ("allocator", ("mi_", "malloc", "_int_free", "cfree", "__libc_free", "mimalloc")),
    ("mem* copies", ("__memcpy", "__memmove", "__memset", "__memcmp")),
    ("crypto (ring: RSA, SHA-256, AES-GCM)", ("ring_core", "ring::")),
    ("SQLite", ("sqlite3", "rusqlite")),
    ("log line (tracing)", ("tracing_subscriber", "tracing_core", "tracing_appender", "tracing::")),
    ("metrics", ("metrics::", "metrics_exporter", "metrics_util")),
    ("protobuf (prost)", ("prost::",)),
    ("onshi code", ("onshi_",)),
    ("rustls", ("rustls",)),
    ("h2", ("h2::",)),
    ("hyper", ("hyper",)),
    ("tonic/tower/axum/http", ("tonic", "tower", "axum", "http::", "http_body")),
    ("tokio/mio", ("tokio", "mio::")),
]
KERNEL_ENTRY = ("entry_SYSCALL", "asm_sysvec", "asm_common_interrupt", "irqentry", "ret_from_fork")


def layer_of(frame):
    for name, keys in LAYERS:
        if any(k in frame for k in keys):
            return name
    return None


def attribute(frames):
    """The layer of one sample (frames from root to leaf)."""
    kernel_at = None
    for i, f in enumerate(frames):
        if any(k in f for k in KERNEL_ENTRY):
            kernel_at = i
            break
    if kernel_at is not None:
        for f in reversed(frames[:kernel_at]):
            layer = layer_of(f)
            if layer:
                return "kernel, entered by " + layer
        return "kernel, other"
    for f in reversed(frames):
        layer = layer_of(f)
        if layer:
            return layer
    return "other"


def load(path):
    counts = collections.Counter()
    total = 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            stack, _, n = line.rstrip("\n").rpartition(" ")
            if not n.isdigit():
                continue
            frames = stack.split(";")
            counts[attribute(frames[1:])] += int(n)
            total += int(n)
    return counts, total


def main(argv):
    if len(argv) < 3 or len(argv) % 2 != 1:
        print(__doc__, file=sys.stderr)
        return 2
    runs = []
    for path, cpu in zip(argv[1::2], argv[2::2]):
        counts, total = load(path)
        if total == 0:
            print(f"{path}: no samples", file=sys.stderr)
            return 1
        runs.append((path, float(cpu), counts, total))
    layers = sorted(
        {k for _, _, c, _ in runs for k in c},
        key=lambda k: -max(c[k] / t * cpu for _, cpu, c, t in runs),
    )
    header = "| layer | " + " | ".join(f"{p} (µs/req)" for p, *_ in runs) + " |"
    print(header)
    print("|---|" + "---:|" * len(runs))
    for k in layers:
        cells = [f"{c[k] / t * cpu:.1f} ({100 * c[k] / t:.1f} %)" for _, cpu, c, t in runs]
        print(f"| {k} | " + " | ".join(cells) + " |")
    print("| **total** | " + " | ".join(f"**{cpu:.1f}**" for _, cpu, _, _ in runs) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
