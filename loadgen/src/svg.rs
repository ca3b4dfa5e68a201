//! A dependency-free SVG of a run: latency by percentile (the x axis in "nines", so the tail
//! is as wide as the median) for each target, and completed requests per second.

use std::fmt::Write as _;

use crate::report::TargetReport;

const W: f64 = 900.0;
const H: f64 = 620.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 30.0;
const COLOURS: [&str; 4] = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd"];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A round axis maximum at or above `v`.
fn nice_max(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * mag >= v {
            return m * mag;
        }
    }
    10.0 * mag
}

/// Renders the plot for `targets` under `title`.
pub fn render(title: &str, targets: &[TargetReport]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
        W / 2.0,
        esc(title)
    );

    // Panel 1: latency by percentile.
    let (top, bottom) = (50.0, 330.0);
    let pw = W - LEFT - RIGHT;
    let max_us = targets
        .iter()
        .flat_map(|t| t.percentile_curve.iter().map(|(_, v)| *v as f64))
        .fold(0.0, f64::max);
    let y_max = nice_max(max_us / 1000.0);
    let x_of = |pct: f64| {
        let nines = -(1.0 - pct / 100.0).max(1e-4).log10();
        LEFT + pw * (nines / 4.0)
    };
    let y_of = |ms: f64| bottom - (bottom - top) * (ms / y_max).min(1.0);
    axes(&mut s, top, bottom);
    for (label, pct) in [
        ("0%", 0.0),
        ("90%", 90.0),
        ("99%", 99.0),
        ("99.9%", 99.9),
        ("99.99%", 99.99),
    ] {
        let x = x_of(pct);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{bottom}" stroke="#ddd"/><text x="{x:.1}" y="{}" text-anchor="middle">{label}</text>"##,
            bottom + 16.0
        );
    }
    for i in 0..=4 {
        let v = y_max * f64::from(i) / 4.0;
        let y = y_of(v);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{v:.2}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="20" y="{:.1}" transform="rotate(-90 20 {:.1})" text-anchor="middle">latency (ms)</text>"#,
        (top + bottom) / 2.0,
        (top + bottom) / 2.0
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{}" text-anchor="middle">percentile</text>"#,
        LEFT + pw / 2.0,
        bottom + 32.0
    );
    for (i, t) in targets.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points: Vec<String> = t
            .percentile_curve
            .iter()
            .map(|(p, v)| format!("{:.1},{:.1}", x_of(*p), y_of(*v as f64 / 1000.0)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" fill="{colour}">{}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms</text>"#,
            LEFT + 10.0,
            top + 16.0 + 16.0 * i as f64,
            esc(&t.target),
            t.throughput_per_s,
            t.latency.p50_us as f64 / 1000.0,
            t.latency.p99_us as f64 / 1000.0,
            t.latency.max_us as f64 / 1000.0
        );
    }

    // Panel 2: completed requests per second.
    let (top, bottom) = (390.0, 580.0);
    axes(&mut s, top, bottom);
    let seconds = targets
        .iter()
        .map(|t| t.per_second.len())
        .max()
        .unwrap_or(0)
        .max(1);
    let peak = targets
        .iter()
        .flat_map(|t| t.per_second.iter().copied())
        .max()
        .unwrap_or(0);
    let r_max = nice_max(peak as f64);
    let x_of = |sec: f64| LEFT + pw * (sec / seconds as f64);
    let y_of = |n: f64| bottom - (bottom - top) * (n / r_max).min(1.0);
    for i in 0..=4 {
        let v = r_max * f64::from(i) / 4.0;
        let y = y_of(v);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{v:.0}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0
        );
    }
    let step = (seconds / 10).max(1);
    for sec in (0..=seconds).step_by(step) {
        let x = x_of(sec as f64);
        let _ = writeln!(
            s,
            r#"<text x="{x:.1}" y="{}" text-anchor="middle">{sec}</text>"#,
            bottom + 16.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="20" y="{:.1}" transform="rotate(-90 20 {:.1})" text-anchor="middle">requests / s</text>"#,
        (top + bottom) / 2.0,
        (top + bottom) / 2.0
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{}" text-anchor="middle">second of the measured phase</text>"#,
        LEFT + pw / 2.0,
        bottom + 32.0
    );
    for (i, t) in targets.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points: Vec<String> = t
            .per_second
            .iter()
            .enumerate()
            .map(|(sec, n)| format!("{:.1},{:.1}", x_of(sec as f64 + 0.5), y_of(*n as f64)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
    }
    s.push_str("</svg>\n");
    s
}

fn axes(s: &mut String, top: f64, bottom: f64) {
    let _ = writeln!(
        s,
        r##"<line x1="{LEFT}" y1="{top}" x2="{LEFT}" y2="{bottom}" stroke="#333"/><line x1="{LEFT}" y1="{bottom}" x2="{}" y2="{bottom}" stroke="#333"/>"##,
        W - RIGHT
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_maxima() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(3.2), 5.0);
        assert_eq!(nice_max(1200.0), 2000.0);
        assert_eq!(nice_max(f64::NAN), 1.0);
    }

    #[test]
    fn an_empty_run_still_renders() {
        let svg = render("t <&>", &[]);
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("t &lt;&amp;&gt;"));
        assert!(svg.trim_end().ends_with("</svg>"));
    }
}
