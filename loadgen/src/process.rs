//! Child processes (the service, the reference server) and their CPU time from `/proc`.
//!
//! A child is stopped when its guard drops: SIGTERM by pid, a bounded wait, then SIGKILL.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::LoadgenError;

/// How long a server may take to say it is listening.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A server child process, stopped on drop.
#[derive(Debug)]
pub struct ServerProcess {
    child: Option<Child>,
    what: String,
    /// The address it printed.
    pub addr: String,
    pub pid: u32,
}

impl ServerProcess {
    /// Starts `command` (stdout piped, stderr to `stderr`) and waits until it prints a line
    /// starting with `ready_prefix` followed by its address.
    pub fn start(
        mut command: Command,
        what: &str,
        ready_prefix: &str,
        stderr: Stdio,
    ) -> Result<ServerProcess, LoadgenError> {
        let err = |reason: String| LoadgenError::Process {
            what: what.to_owned(),
            reason,
        };
        // Its own process group: a Ctrl-C at the terminal reaches loadgen only, which then
        // finishes the window in flight and stops the child itself.
        let mut child = command
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| err(format!("cannot start {command:?}: {e}")))?;
        let pid = child.id();
        let stdout = child.stdout.take();
        let mut guard = ServerProcess {
            child: Some(child),
            what: what.to_owned(),
            addr: String::new(),
            pid,
        };
        let stdout = stdout.ok_or_else(|| err("no stdout".into()))?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix(ready_prefix) {
                        guard.addr = addr.trim().to_owned();
                        return Ok(guard);
                    }
                }
                Err(_) => {
                    let status = guard
                        .child
                        .as_mut()
                        .and_then(|c| c.try_wait().ok().flatten())
                        .map(|s| format!("exited with {s}"))
                        .unwrap_or_else(|| {
                            format!("did not say {ready_prefix:?} within {START_TIMEOUT:?}")
                        });
                    return Err(err(status));
                }
            }
        }
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// SIGTERM, a bounded wait for a clean exit, then SIGKILL.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SIGTERM lets the service finish its writes; a pid that is gone already is fine.
        if let Some(pid) = i32::try_from(child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(_) => break,
            }
        }
        eprintln!("loadgen: {} did not stop on SIGTERM; killing it", self.what);
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The binary `name` beside the running executable (target/<profile>/), where cargo puts
/// the workspace's binaries.
pub fn sibling_binary(name: &str) -> Result<PathBuf, LoadgenError> {
    let exe = std::env::current_exe().map_err(|e| LoadgenError::Process {
        what: name.to_owned(),
        reason: format!("cannot locate the running executable: {e}"),
    })?;
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    let path = dir.join(name);
    if path.exists() {
        Ok(path)
    } else {
        Err(LoadgenError::Process {
            what: name.to_owned(),
            reason: format!(
                "{} is missing: build it (cargo build -p onshi-confirm-service) or pass --service-bin",
                path.display()
            ),
        })
    }
}

/// Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`, 100 if unknown).
pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// User + system CPU seconds of process `pid` (all its threads), from `/proc/<pid>/stat`.
pub fn cpu_seconds(pid: u32, ticks: f64) -> Result<f64, LoadgenError> {
    let path = PathBuf::from(format!("/proc/{pid}/stat"));
    let text = std::fs::read_to_string(&path).map_err(LoadgenError::io("read", &path))?;
    parse_stat_cpu(&text)
        .map(|t| t as f64 / ticks)
        .ok_or_else(|| LoadgenError::Process {
            what: format!("pid {pid}"),
            reason: format!("{} has no utime/stime fields", path.display()),
        })
}

/// The CPU seconds of several processes added up; `None` for no process.
pub fn cpu_seconds_of(pids: &[u32], ticks: f64) -> Result<Option<f64>, LoadgenError> {
    if pids.is_empty() {
        return Ok(None);
    }
    pids.iter()
        .map(|&p| cpu_seconds(p, ticks))
        .sum::<Result<f64, _>>()
        .map(Some)
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line, in clock ticks. The command
/// name (field 2) may contain spaces and parentheses, so fields are counted after the last ')'.
pub fn parse_stat_cpu(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14 → index 11.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_utime_and_stime_after_an_awkward_name() {
        let line = "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 31 0 0 20 0 9 0 5 0 0";
        assert_eq!(parse_stat_cpu(line), Some(281));
        assert_eq!(parse_stat_cpu("garbage"), None);
        assert_eq!(parse_stat_cpu("1 (x) S 1 2"), None);
    }

    #[test]
    fn own_cpu_time_is_readable() {
        let t = cpu_seconds(std::process::id(), clock_ticks());
        assert!(matches!(t, Ok(s) if s >= 0.0), "{t:?}");
    }
}
