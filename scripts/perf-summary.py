#!/usr/bin/env python3
"""Sums a perf profile of confirm-service by where the time goes (docs/performance.md).

    perf record -e cpu-clock -p "$(pgrep -f 'confirm-service serve')" -o svc.data -- sleep 8
    perf script -i svc.data -F comm,ip,sym | scripts/perf-summary.py

Each sample's own function (its top frame) is put in a category: SQLite, ring (RSA, SHA-256,
AES-GCM of TLS), h2, rustls, malloc, the kernel's scheduler and wake-ups, its network and file
code, and so on; samples are split by thread: the audit writer (the group commits) and the
runtime's workers (which include the store threads). Call graphs are not needed, so it works
on a build without frame pointers.
"""
import collections
import sys


def samples(lines):
    """(thread name, top symbol) per sample of `perf script -F comm,ip,sym` output."""
    for line in lines:
        parts = line.split()
        if len(parts) < 2:
            continue
        comm = parts[0]
        # comm, then the address, then the symbol (possibly with spaces and +0x offsets).
        sym = " ".join(parts[2:]) if len(parts) > 2 else "?"
        yield comm, sym.split("+0x")[0]

def group(sym):
    """The category of a function name."""
    for k in ['sqlite3','wal','pcache','btree','Btree','Pager','pager','vdbe','Vdbe','rusqlite','unixRead','unixWrite','unixSync']:
        if k in sym: return 'sqlite'
    if 'ring_core' in sym or '__bn' in sym or 'ring::' in sym: return 'ring (RSA, SHA-256)'
    if 'h2::' in sym: return 'h2'
    if 'hyper' in sym: return 'hyper'
    if 'rustls' in sym: return 'rustls'
    if 'tonic' in sym or 'tower' in sym: return 'tonic/tower'
    if 'malloc' in sym or 'free' in sym or '_int_' in sym or 'unlink_chunk' in sym: return 'malloc/free'
    if 'memmove' in sym or 'memcpy' in sym or 'memset' in sym or 'memcmp' in sym: return 'mem*'
    if 'tokio' in sym or 'mio' in sym: return 'tokio'
    if 'serde_json' in sym: return 'serde_json'
    if 'onshi' in sym: return 'onshi'
    if 'asn1' in sym or 'der_parser' in sym or 'x509' in sym or 'nom' in sym: return 'asn1/x509'
    if 'prost' in sym: return 'prost'
    if 'time::' in sym: return 'time'
    if 'finish_task_switch' in sym or 'schedule' in sym or 'spin_unlock' in sym or 'futex' in sym or 'smp_call' in sym or 'write_msr' in sym or 'irqentry' in sym or 'syscall' in sym: return 'kernel: scheduling, wakeups, syscalls'
    if 'tcp' in sym or 'softirq' in sym or 'skb' in sym or 'ip_' in sym or 'sock' in sym or 'net_' in sym or '_copy_' in sym or 'copy_' in sym: return 'kernel: network'
    if 'ext4' in sym or 'folio' in sym or 'filemap' in sym or 'iowrite' in sym or 'blk' in sym or 'xas' in sym or 'virt' in sym or 'page' in sym: return 'kernel: files, disk'
    return 'other: '+sym[:60]


def main():
    by = collections.defaultdict(collections.Counter)
    n = 0
    for comm, sym in samples(sys.stdin):
        thread = "audit writer" if comm.startswith("audit") else "runtime workers and store threads"
        by[thread][group(sym)] += 1
        n += 1
    if n == 0:
        sys.exit("perf-summary: no samples on standard input")
    for thread, counts in sorted(by.items()):
        m = sum(counts.values())
        print(f"== {thread}: {100 * m / n:.1f}% of {n} samples")
        for name, v in counts.most_common(14):
            print(f"  {100 * v / n:5.1f}%  {name}")


if __name__ == "__main__":
    main()
