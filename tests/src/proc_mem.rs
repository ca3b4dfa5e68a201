//! Looking into another process of this machine from a test: how often a byte string occurs in
//! its memory (every readable mapping, through `/proc/PID/mem`), and whether a process without
//! privileges may read its `/proc` files (which a non-dumpable process forbids).

use std::os::unix::fs::FileExt as _;
use std::process::Command;

use crate::Result;

/// How many times `needle` occurs in the readable memory of process `pid`. Needs the right to
/// trace it (root with CAP_SYS_PTRACE reads even a non-dumpable process).
pub fn occurrences(pid: u32, needle: &[u8]) -> Result<usize> {
    if needle.is_empty() {
        return Err("an empty needle".into());
    }
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .map_err(|e| format!("cannot read the maps of {pid}: {e}"))?;
    let mem = std::fs::File::open(format!("/proc/{pid}/mem"))
        .map_err(|e| format!("cannot open the memory of {pid}: {e}"))?;
    let mut count = 0;
    let mut readable = 0usize;
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        let name = fields.nth(3).unwrap_or("");
        if !perms.starts_with('r') || name == "[vvar]" || name == "[vsyscall]" {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16))
        else {
            continue;
        };
        const CHUNK: u64 = 1 << 20;
        let overlap = needle.len() as u64 - 1;
        let mut at = start;
        while at < end {
            // Each chunk overlaps the next by the needle's length less one byte.
            let len = (CHUNK + overlap).min(end - at);
            let mut buf = vec![0u8; len as usize];
            match mem.read_at(&mut buf, at) {
                Ok(n) => {
                    readable += n;
                    count += buf[..n]
                        .windows(needle.len())
                        .filter(|w| *w == needle)
                        .count();
                }
                Err(_) => break,
            }
            at += CHUNK;
        }
    }
    if readable == 0 {
        return Err(format!("nothing of process {pid}'s memory could be read"));
    }
    Ok(count)
}

/// The command prefix that runs a program with no capabilities at all (as root's uid, every
/// capability dropped), execing it under the same process id.
pub const WITHOUT_CAPABILITIES: [&str; 4] =
    ["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--"];

/// Whether a process with no capabilities at all can read `/proc/PID/environ`. For a target
/// of the same user that has no capabilities either ([`WITHOUT_CAPABILITIES`]), it can if
/// and only if the target is dumpable.
pub fn readable_without_privileges(pid: u32) -> Result<bool> {
    let out = Command::new(WITHOUT_CAPABILITIES[0])
        .args(&WITHOUT_CAPABILITIES[1..])
        .arg("cat")
        .arg(format!("/proc/{pid}/environ"))
        .output()
        .map_err(|e| format!("cannot run setpriv (util-linux): {e}"))?;
    if out.status.success() {
        return Ok(true);
    }
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("Permission denied") {
        Ok(false)
    } else {
        Err(format!("setpriv … cat failed otherwise: {err}"))
    }
}
