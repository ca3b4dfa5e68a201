//! Progress output on stderr: one line per build step, and while the population streams into
//! the store a single updating line (persons written of the total, rate, time left). On a
//! terminal the line is rewritten in place a few times a second; elsewhere (a log, a pipe) a
//! new line is printed every ten seconds so logs stay readable.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// The step printer and the population meter.
#[derive(Debug)]
pub struct Progress {
    enabled: bool,
    tty: bool,
    started: Instant,
}

/// Minimum time between two updates of the line.
const TTY_EVERY: Duration = Duration::from_millis(250);
const LOG_EVERY: Duration = Duration::from_secs(10);

impl Progress {
    pub fn new(enabled: bool) -> Self {
        Progress {
            enabled,
            tty: std::io::stderr().is_terminal(),
            started: Instant::now(),
        }
    }

    /// A build step.
    pub fn step(&self, what: &str) {
        if self.enabled {
            eprintln!("testbed: [{:6.2}s] {what}", self.elapsed());
        }
    }

    fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// A meter of `total` persons.
    pub fn meter(&self, total: usize) -> Meter<'_> {
        let now = Instant::now();
        Meter {
            progress: self,
            total,
            started: now,
            last: None,
        }
    }
}

/// The updating line of one streaming step.
#[derive(Debug)]
pub struct Meter<'p> {
    progress: &'p Progress,
    total: usize,
    started: Instant,
    last: Option<Instant>,
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Seconds as `1h02m03s`, `2m03s` or `3s`.
pub fn duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, s) => format!("{h}h{m:02}m{s:02}s"),
    }
}

/// The text of the line: done of total, the rate so far and the time left at that rate.
pub fn line(done: usize, total: usize, elapsed_secs: f64) -> String {
    let percent = if total == 0 {
        100.0
    } else {
        done as f64 * 100.0 / total as f64
    };
    let rate = if elapsed_secs > 0.0 {
        done as f64 / elapsed_secs
    } else {
        0.0
    };
    let eta = if rate > 0.0 && done < total {
        format!(", {} left", duration((total - done) as f64 / rate))
    } else {
        String::new()
    };
    format!(
        "persons {} / {} ({percent:.1}%), {}/s{eta}",
        thousands(done),
        thousands(total),
        thousands(rate.round() as usize)
    )
}

impl Meter<'_> {
    /// `done` persons are written.
    pub fn update(&mut self, done: usize) {
        let p = self.progress;
        if !p.enabled {
            return;
        }
        let now = Instant::now();
        let every = if p.tty { TTY_EVERY } else { LOG_EVERY };
        if self.last.is_some_and(|last| now - last < every) {
            return;
        }
        self.last = Some(now);
        self.print(done, false);
    }

    /// The last update, always shown, ending the line.
    pub fn finish(&mut self, done: usize) {
        if self.progress.enabled {
            self.print(done, true);
        }
    }

    fn print(&self, done: usize, last: bool) {
        let p = self.progress;
        let text = line(done, self.total, self.started.elapsed().as_secs_f64());
        let mut err = std::io::stderr().lock();
        // Progress output that cannot be written is not worth failing a build for.
        let _ = if p.tty {
            // Rewrite the line in place; clear what a longer previous line left.
            write!(err, "\rtestbed: [{:6.2}s] {text}\x1b[K", p.elapsed())
        } else {
            writeln!(err, "testbed: [{:6.2}s] {text}", p.elapsed())
        };
        if p.tty && last {
            let _ = writeln!(err);
        }
        let _ = err.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_reads_well() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(10_000_000), "10,000,000");
        assert_eq!(duration(3.4), "3s");
        assert_eq!(duration(123.0), "2m03s");
        assert_eq!(duration(3723.0), "1h02m03s");
        assert_eq!(
            line(2_500_000, 10_000_000, 50.0),
            "persons 2,500,000 / 10,000,000 (25.0%), 50,000/s, 2m30s left"
        );
        assert_eq!(line(10, 10, 1.0), "persons 10 / 10 (100.0%), 10/s");
        assert_eq!(line(0, 10, 0.0), "persons 0 / 10 (0.0%), 0/s");
    }
}
