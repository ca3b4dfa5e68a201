//! The run's plot (`--plot`), drawn with plotters' SVG backend: latency by percentile (the x
//! axis in "nines", so the tail is as wide as the median), requests answered in each complete
//! measured second, and the p50 and p99 of each second, one line per target.

use plotters::prelude::*;

use crate::report::{Report, TargetReport};
use crate::LoadgenError;

const W: u32 = 1000;
const H: u32 = 1020;
/// Room for the title: one line of TITLE_FONT per line of the title.
const TITLE_LINE: u32 = 24;
const TITLE_FONT: u32 = 17;
const CAPTION_FONT: u32 = 15;
const COLOURS: [RGBColor; 4] = [
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
];
/// The x axis of the percentile panel ends at 99.99 % (four nines).
const MAX_NINES: f64 = 4.0;

/// The plot's title: what was run, on two lines so it fits the width.
pub fn title(report: &Report) -> String {
    let s = &report.setup;
    let load = match (s.concurrency, s.rate) {
        (Some(c), _) => format!("closed loop, {c} in flight"),
        (None, Some(r)) => format!("open loop, {r} req/s"),
        _ => s.mode.clone(),
    };
    format!(
        "onshi loadgen: {} terminals, {load}, {:.0} s in {} round(s)\nmix {}, {} cores, {}",
        s.terminals, s.duration_s, s.rounds, s.mix, s.cores, report.started_at
    )
}

/// A percentile as "nines" (0 % → 0, 90 % → 1, 99 % → 2, …), capped at MAX_NINES.
fn nines(pct: f64) -> f64 {
    (-(1.0 - pct / 100.0).max(10f64.powf(-MAX_NINES)).log10()).clamp(0.0, MAX_NINES)
}

/// The percentile at `n` nines, as an axis label.
fn nines_label(n: f64) -> String {
    let pct = 100.0 * (1.0 - 10f64.powf(-n));
    let text = format!("{pct:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
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

fn drawing<E: std::error::Error + Send + Sync>(
    e: plotters::drawing::DrawingAreaErrorKind<E>,
) -> LoadgenError {
    LoadgenError::Report(format!("plot: {e}"))
}

/// Renders the plot for `targets` under `title` (lines separated by `\n`).
pub fn render(title: &str, targets: &[TargetReport]) -> Result<String, LoadgenError> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let lines: Vec<&str> = title.lines().collect();
        let title_height = TITLE_LINE * u32::try_from(lines.len()).unwrap_or(1).max(1) + 12;
        let (head, body) = root.split_vertically(title_height);
        for (i, line) in lines.iter().enumerate() {
            let y = 8 + TITLE_LINE * u32::try_from(i).unwrap_or(0);
            head.draw(&Text::new(
                (*line).to_owned(),
                (16, i32::try_from(y).unwrap_or(0)),
                ("sans-serif", TITLE_FONT).into_font(),
            ))
            .map_err(drawing)?;
        }
        let panels = body.split_evenly((3, 1));
        percentiles(&panels[0], targets)?;
        throughput(&panels[1], targets)?;
        latency_over_time(&panels[2], targets)?;
        root.present().map_err(drawing)?;
    }
    Ok(out)
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

fn percentiles(area: &Area<'_>, targets: &[TargetReport]) -> Result<(), LoadgenError> {
    let max_us = targets
        .iter()
        .flat_map(|t| t.percentile_curve.iter().map(|(_, v)| *v as f64))
        .fold(0.0, f64::max);
    let y_max = nice_max(max_us / 1000.0);
    let mut chart = ChartBuilder::on(area)
        .caption("Latency by percentile", ("sans-serif", CAPTION_FONT))
        .margin(12)
        // Room for the last label, "99.99%", centred on the axis's end.
        .margin_right(36)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..MAX_NINES, 0.0..y_max)
        .map_err(drawing)?;
    chart
        .configure_mesh()
        .x_labels(5)
        .x_label_formatter(&|n| nines_label(*n))
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .draw()
        .map_err(drawing)?;
    for (i, t) in targets.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points = t
            .percentile_curve
            .iter()
            .map(|(p, v)| (nines(*p), *v as f64 / 1000.0));
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))
            .map_err(drawing)?
            .label(format!(
                "{}: {:.0} req/s, p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                t.target,
                t.throughput_per_s,
                t.latency.p50_us as f64 / 1000.0,
                t.latency.p95_us as f64 / 1000.0,
                t.latency.p99_us as f64 / 1000.0,
                t.latency.max_us as f64 / 1000.0
            ))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
    }
    legend(&mut chart)
}

/// The longest per-second series, at least one second.
fn seconds(targets: &[TargetReport]) -> usize {
    targets
        .iter()
        .map(|t| t.seconds.len())
        .max()
        .unwrap_or(0)
        .max(1)
}

fn throughput(area: &Area<'_>, targets: &[TargetReport]) -> Result<(), LoadgenError> {
    let peak = targets
        .iter()
        .flat_map(|t| t.seconds.iter().map(|s| s.completed))
        .max()
        .unwrap_or(0);
    let mut chart = ChartBuilder::on(area)
        .caption(
            "Requests answered in each complete measured second",
            ("sans-serif", CAPTION_FONT),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..seconds(targets) as f64, 0.0..nice_max(peak as f64))
        .map_err(drawing)?;
    chart
        .configure_mesh()
        .x_desc("measured second (windows concatenated)")
        .y_desc("requests / s")
        .draw()
        .map_err(drawing)?;
    for (i, t) in targets.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points = t
            .seconds
            .iter()
            .enumerate()
            .map(|(sec, s)| (sec as f64 + 0.5, s.completed as f64));
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))
            .map_err(drawing)?
            .label(t.target.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
    }
    legend(&mut chart)
}

fn latency_over_time(area: &Area<'_>, targets: &[TargetReport]) -> Result<(), LoadgenError> {
    let peak = targets
        .iter()
        .flat_map(|t| t.seconds.iter().map(|s| s.p99_us))
        .max()
        .unwrap_or(0);
    let mut chart = ChartBuilder::on(area)
        .caption(
            "Latency in each measured second: p99 (solid), p50 (thin)",
            ("sans-serif", CAPTION_FONT),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(
            0.0..seconds(targets) as f64,
            0.0..nice_max(peak as f64 / 1000.0),
        )
        .map_err(drawing)?;
    chart
        .configure_mesh()
        .x_desc("measured second (windows concatenated)")
        .y_desc("latency (ms)")
        .draw()
        .map_err(drawing)?;
    for (i, t) in targets.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let at = |f: fn(&crate::drive::Second) -> u64| {
            t.seconds
                .iter()
                .enumerate()
                .map(move |(sec, s)| (sec as f64 + 0.5, f(s) as f64 / 1000.0))
        };
        chart
            .draw_series(LineSeries::new(at(|s| s.p99_us), colour.stroke_width(2)))
            .map_err(drawing)?
            .label(format!("{} p99", t.target))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
        chart
            .draw_series(LineSeries::new(at(|s| s.p50_us), colour.stroke_width(1)))
            .map_err(drawing)?;
    }
    legend(&mut chart)
}

fn legend<'b>(
    chart: &mut ChartContext<
        'b,
        SVGBackend<'b>,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
) -> Result<(), LoadgenError> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(drawing)
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
    fn the_percentile_axis_counts_nines() {
        assert_eq!(nines(0.0), 0.0);
        assert!((nines(99.0) - 2.0).abs() < 1e-9);
        assert_eq!(nines(100.0), MAX_NINES);
        assert_eq!(nines_label(0.0), "0%");
        assert_eq!(nines_label(1.0), "90%");
        assert_eq!(nines_label(3.0), "99.9%");
    }

    #[test]
    fn an_empty_run_still_renders_with_its_whole_title() {
        let svg = render("t <&>\nsecond line", &[]).unwrap_or_else(|e| panic!("{e}"));
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("t &lt;&amp;&gt;"), "{svg}");
        assert!(svg.contains("second line"), "{svg}");
        assert!(svg.contains("Latency by percentile"), "{svg}");
        assert!(svg.contains("Latency in each measured second"), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"), "{svg}");
    }
}
