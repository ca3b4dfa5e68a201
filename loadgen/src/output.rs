//! The files a run writes (`--json`, `--plot`, `--hgrm`): each is checked before any load
//! is applied, by creating a temporary file beside it, and written after the text report is
//! printed, by renaming that file into place (so a failed run leaves no half-written file).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use tempfile::NamedTempFile;

use crate::mix::Target;
use crate::report::Report;
use crate::run::RunOptions;
use crate::svg;
use crate::LoadgenError;

/// Microseconds per millisecond: `.hgrm` values are in milliseconds, as HdrHistogram's own
/// tools and plotters expect from a histogram recorded in microseconds.
const HGRM_SCALE: f64 = 1000.0;
/// Reporting ticks per half distance to 100 %, as in HdrHistogram's percentile output.
const HGRM_TICKS: u32 = 5;

/// One output file: where it goes, and the temporary file beside it that proved the place
/// writable.
#[derive(Debug)]
struct Pending {
    option: &'static str,
    path: PathBuf,
    temp: NamedTempFile,
}

impl Pending {
    fn open(option: &'static str, path: &Path) -> Result<Pending, LoadgenError> {
        let bad = |why: String| {
            Err(LoadgenError::Usage(format!(
                "{option} {}: {why}",
                path.display()
            )))
        };
        if path.is_dir() {
            return bad("is a directory; give a file name".into());
        }
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        if !parent.is_dir() {
            return bad(format!("the folder {} does not exist", parent.display()));
        }
        match tempfile::Builder::new()
            .prefix(".loadgen-out-")
            .tempfile_in(&parent)
        {
            Ok(temp) => Ok(Pending {
                option,
                path: path.to_owned(),
                temp,
            }),
            Err(e) => bad(format!("cannot write in {}: {e}", parent.display())),
        }
    }

    fn write(mut self, bytes: &[u8]) -> Result<PathBuf, LoadgenError> {
        let what = self.option;
        // A temporary file is private (0600); a report is not.
        let readable = std::os::unix::fs::PermissionsExt::from_mode(0o644);
        self.temp
            .write_all(bytes)
            .and_then(|()| self.temp.flush())
            .and_then(|()| self.temp.as_file().set_permissions(readable))
            .map_err(|e| LoadgenError::Report(format!("{what} {}: {e}", self.path.display())))?;
        self.temp.persist(&self.path).map_err(|e| {
            LoadgenError::Report(format!("{what} {}: {}", self.path.display(), e.error))
        })?;
        Ok(self.path)
    }
}

/// The `.hgrm` file of one target for the prefix given to `--hgrm`.
pub fn hgrm_path(prefix: &Path, target: Target) -> PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    name.push(format!("-{}.hgrm", target.name()));
    PathBuf::from(name)
}

/// The output files of a run, checked and reserved.
#[derive(Debug)]
pub struct Outputs {
    json: Option<Pending>,
    plot: Option<Pending>,
    hgrm: Vec<(Target, Pending)>,
}

impl Outputs {
    /// Checks every output path of `opts` (an existing folder, writable, not a folder itself)
    /// before the run.
    pub fn open(opts: &RunOptions) -> Result<Outputs, LoadgenError> {
        let json = opts
            .json
            .as_deref()
            .map(|p| Pending::open("--json", p))
            .transpose()?;
        let plot = opts
            .plot
            .as_deref()
            .map(|p| Pending::open("--plot", p))
            .transpose()?;
        let mut hgrm = Vec::new();
        if let Some(prefix) = &opts.hgrm {
            let mut targets = vec![Target::Service];
            if opts.reference {
                targets.push(Target::Reference);
            }
            for target in targets {
                hgrm.push((target, Pending::open("--hgrm", &hgrm_path(prefix, target))?));
            }
        }
        Ok(Outputs { json, plot, hgrm })
    }

    /// Writes the files; returns the paths written.
    pub fn write(self, report: &Report) -> Result<Vec<PathBuf>, LoadgenError> {
        let mut written = Vec::new();
        if let Some(json) = self.json {
            let text = serde_json::to_string_pretty(report)
                .map_err(|e| LoadgenError::Report(e.to_string()))?;
            written.push(json.write(text.as_bytes())?);
        }
        if let Some(plot) = self.plot {
            let svg = svg::render(&svg::title(report), &report.targets)?;
            written.push(plot.write(svg.as_bytes())?);
        }
        for (target, pending) in self.hgrm {
            if let Some(t) = report.targets.iter().find(|t| t.target == target.name()) {
                written.push(pending.write(percentile_distribution(&t.histogram).as_bytes())?);
            }
        }
        Ok(written)
    }
}

/// The histogram (recorded in µs) as an HdrHistogram percentile distribution (`.hgrm`) in
/// milliseconds: the text HdrHistogram's `outputPercentileDistribution` prints and its
/// plotters read. The rows come from the crate's own quantile iteration.
pub fn percentile_distribution(h: &Histogram<u64>) -> String {
    let digits = usize::from(h.sigfig());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    for v in h.iter_quantiles(HGRM_TICKS) {
        total += v.count_since_last_iteration();
        let value = v.value_iterated_to() as f64 / HGRM_SCALE;
        let q = v.quantile_iterated_to();
        if q < 1.0 {
            let _ = writeln!(
                out,
                "{value:>12.digits$} {q:>2.12} {total:>10} {:>14.2}",
                1.0 / (1.0 - q)
            );
        } else {
            let _ = writeln!(out, "{value:>12.digits$} {q:>2.12} {total:>10}");
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:>12.digits$}, StdDeviation   = {:>12.digits$}]",
        h.mean() / HGRM_SCALE,
        h.stdev() / HGRM_SCALE
    );
    let _ = writeln!(
        out,
        "#[Max     = {:>12.digits$}, Total count    = {:>12}]",
        h.max() as f64 / HGRM_SCALE,
        h.len()
    );
    let sub_buckets = (2 * 10u64.pow(u32::from(h.sigfig()))).next_power_of_two();
    let _ = writeln!(
        out,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        h.buckets(),
        sub_buckets
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_percentile_distribution_has_the_hgrm_layout() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|e| {
            panic!("histogram: {e}");
        });
        for us in 1..=1000u64 {
            h.record(us * 10).unwrap_or_else(|e| panic!("record: {e}"));
        }
        let text = percentile_distribution(&h);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]
        );
        assert_eq!(lines[1], "");
        // Data rows: value (ms), quantile, cumulative count, and 1/(1-q) except on the last.
        let rows: Vec<Vec<f64>> = lines[2..]
            .iter()
            .take_while(|l| !l.starts_with('#'))
            .map(|l| {
                l.split_whitespace()
                    .map(|f| f.parse().unwrap_or(f64::NAN))
                    .collect()
            })
            .collect();
        assert!(rows.len() > 20, "{text}");
        assert!(
            (rows[0][0] - 0.010).abs() < 1e-9,
            "first value 10 µs in ms: {text}"
        );
        let last = rows.last().map(Vec::as_slice).unwrap_or_default();
        assert_eq!(last.len(), 3, "{text}");
        assert_eq!(last[1], 1.0);
        assert_eq!(last[2], 1000.0);
        assert!((last[0] - 10.0).abs() < 0.01, "max 10 ms: {text}");
        for pair in rows.windows(2) {
            assert!(
                pair[0][0] <= pair[1][0] && pair[0][1] <= pair[1][1],
                "{text}"
            );
        }
        assert!(
            text.contains("#[Max     =       10.007, Total count    =         1000]"),
            "{text}"
        );
        assert!(text.contains("SubBuckets     =         2048]"), "{text}");
    }

    #[test]
    fn hgrm_files_are_named_per_target() {
        assert_eq!(
            hgrm_path(Path::new("out/run1"), Target::Reference),
            PathBuf::from("out/run1-reference.hgrm")
        );
    }

    #[test]
    fn output_paths_are_checked_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let missing = dir.path().join("no-such-folder/report.json");
        let refused = |r: Result<Pending, LoadgenError>| match r {
            Ok(p) => panic!("{} accepted", p.path.display()),
            Err(e) => e.to_string(),
        };
        let err = refused(Pending::open("--json", &missing));
        assert!(
            err.contains("--json") && err.contains("does not exist"),
            "{err}"
        );
        let err = refused(Pending::open("--plot", dir.path()));
        assert!(err.contains("is a directory"), "{err}");
        let ok = dir.path().join("report.json");
        let pending = Pending::open("--json", &ok).unwrap_or_else(|e| panic!("{e}"));
        assert!(!ok.exists(), "nothing is written before the run");
        pending.write(b"{}").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(std::fs::read_to_string(&ok).ok().as_deref(), Some("{}"));
        let mode = std::fs::metadata(&ok)
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777);
        assert_eq!(mode.ok(), Some(0o644));
    }
}
