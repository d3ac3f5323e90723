//! A dependency-free SVG chart of benchmark ratios: one panel per group, one
//! bar per row, each row's throughput relative to the best peer of its
//! scenario (1.0 = the best peer; right of the line is faster).
//!
//! Layout: the label column is as wide as the longest label (monospace, so its
//! width is known without a font), the plot is a fixed width, and a margin on
//! the right holds the value printed after each bar. A panel whose ratios span
//! more than a decade is drawn on a log scale with a tick per decade; the others
//! on a linear scale from 0. The caption names the machine and the date (UTC),
//! since the numbers mean nothing without them.

use super::{Row, is_ours};
use std::fmt::Write;

const FONT: f64 = 12.0;
/// Advance of one character of the 12 px monospace font (DejaVu Sans Mono and
/// Liberation Mono: 0.6 em), rounded up so that labels never overflow.
const CHAR_W: f64 = 7.4;
const BAR_H: f64 = 15.0;
const ROW_GAP: f64 = 5.0;
const PLOT_W: f64 = 420.0;
const MARGIN: f64 = 12.0;
/// Room after a bar for its value ("0.123x").
const VALUE_W: f64 = 64.0;
/// A white outline under a value's text, so that the 1.0 line crossing it
/// does not cross out its digits.
const HALO: &str = r#"stroke="white" stroke-width="3" paint-order="stroke""#;
const OURS: &str = "#d9480f";
const PEER: &str = "#868e96";

/// The chart of `rows`, captioned with this machine and today's date.
pub fn svg(rows: &[Row]) -> String {
    svg_with_caption(rows, &caption())
}

/// Each row's throughput over the best peer's in its scenario (group,
/// scenario and thread count); 1.0 for a scenario without a peer.
fn ratios(rows: &[Row]) -> Vec<f64> {
    rows.iter()
        .map(|r| {
            let best = rows
                .iter()
                .filter(|p| {
                    p.group == r.group
                        && p.scenario == r.scenario
                        && p.threads == r.threads
                        && !is_ours(&p.impl_name)
                })
                .map(|p| p.ops_per_sec)
                .fold(0.0, f64::max);
            if best > 0.0 {
                r.ops_per_sec / best
            } else {
                1.0
            }
        })
        .collect()
}

/// How a panel maps a ratio to an x offset in the plot.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Scale {
    /// 0 ..= max, linear.
    Linear { max: f64 },
    /// 10^lo ..= 10^hi, one tick per decade.
    Log { lo: i32, hi: i32 },
}

impl Scale {
    /// The scale for a panel's ratios: log when they span more than a decade
    /// (max/min > 10), else linear with room past the largest bar and the 1.0
    /// line.
    fn for_ratios(v: &[f64]) -> Scale {
        let max = v.iter().copied().fold(1.0, f64::max);
        let min = v.iter().copied().filter(|&x| x > 0.0).fold(1.0, f64::min);
        if max / min > 10.0 {
            Scale::Log {
                // At least a third of a decade below the smallest bar, so that
                // a bar of exactly 1.0 (the best peer) is not drawn empty.
                lo: (min.log10() - 0.3).floor() as i32,
                hi: max.log10().ceil() as i32,
            }
        } else {
            Scale::Linear { max: max * 1.05 }
        }
    }

    fn x(self, v: f64) -> f64 {
        match self {
            Scale::Linear { max } => PLOT_W * (v / max).clamp(0.0, 1.0),
            Scale::Log { lo, hi } => {
                let lv = if v > 0.0 { v.log10() } else { f64::from(lo) };
                PLOT_W * ((lv - f64::from(lo)) / f64::from(hi - lo)).clamp(0.0, 1.0)
            }
        }
    }

    /// The ticks to draw: (ratio, label).
    fn ticks(self) -> Vec<(f64, String)> {
        match self {
            Scale::Linear { max } => {
                let step = if max > 4.0 { 1.0 } else { 0.5 };
                (0..)
                    .map(|i| f64::from(i) * step)
                    .take_while(|&t| t <= max)
                    .map(|t| (t, format!("{t}x")))
                    .collect()
            }
            Scale::Log { lo, hi } => (lo..=hi)
                .map(|e| {
                    let t = 10f64.powi(e);
                    (t, format!("{t}x"))
                })
                .collect(),
        }
    }
}

fn svg_with_caption(rows: &[Row], caption: &str) -> String {
    let ratio = ratios(rows);
    // Groups in first-seen order, each with its rows' indices.
    let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        match groups.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, idx)) => idx.push(i),
            None => groups.push((&r.group, vec![i])),
        }
    }
    let labels: Vec<String> = rows
        .iter()
        .map(|r| format!("{} · {} t{}", r.impl_name, r.scenario, r.threads))
        .collect();
    let label_w = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0) as f64 * CHAR_W;
    let title = "ksync bench: throughput relative to the best peer of each scenario";
    let plot_x = MARGIN + label_w + 8.0;
    let width = (plot_x + PLOT_W + VALUE_W + MARGIN)
        .max(MARGIN * 2.0 + title.chars().count() as f64 * CHAR_W * 14.0 / FONT)
        .max(MARGIN * 2.0 + caption.chars().count() as f64 * CHAR_W)
        .ceil();

    let mut body = String::new();
    let mut y = 78.0;
    for (group, idx) in &groups {
        let vals: Vec<f64> = idx.iter().map(|&i| ratio[i]).collect();
        let scale = Scale::for_ratios(&vals);
        let kind = match scale {
            Scale::Linear { .. } => "linear scale",
            Scale::Log { .. } => "log scale",
        };
        // Panel title.
        let _ = write!(
            body,
            r##"<text x="{MARGIN}" y="{}" font-size="14" font-weight="bold">{}</text><text x="{:.1}" y="{}" fill="#495057">({kind})</text>"##,
            y + 14.0,
            xml_escape(group),
            MARGIN + (group.chars().count() + 1) as f64 * CHAR_W * 14.0 / FONT,
            y + 14.0
        );
        let top = y + 30.0;
        let bottom = top + idx.len() as f64 * (BAR_H + ROW_GAP);
        // Ticks and grid.
        for (t, label) in scale.ticks() {
            let x = plot_x + scale.x(t);
            let _ = write!(
                body,
                r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{bottom}" stroke="#dee2e6"/><text x="{x:.1}" y="{}" text-anchor="middle" fill="#495057" font-size="11">{label}</text>"##,
                bottom + 13.0
            );
        }
        // Bars, with their labels; their values after the 1.0 line.
        let mut values = String::new();
        for (k, &i) in idx.iter().enumerate() {
            let r = &rows[i];
            let by = top + k as f64 * (BAR_H + ROW_GAP);
            let w = scale.x(ratio[i]).max(1.0);
            let color = if is_ours(&r.impl_name) { OURS } else { PEER };
            let _ = write!(
                body,
                r#"<text x="{}" y="{}" text-anchor="end">{}</text><rect x="{plot_x}" y="{by}" width="{w:.1}" height="{BAR_H}" fill="{color}"/>"#,
                plot_x - 8.0,
                by + 11.5,
                xml_escape(&labels[i]),
            );
            let _ = write!(
                values,
                r#"<text x="{:.1}" y="{}" {HALO}>{}x</text>"#,
                plot_x + w + 4.0,
                by + 11.5,
                fmt_ratio(ratio[i])
            );
        }
        // The 1.0 line: over the bars, under their values (which a white halo keeps
        // legible); labelled above the first bar, to the line's right, or to its
        // left when it stands in the plot's right half.
        let one = plot_x + scale.x(1.0);
        let (lx, anchor) = if scale.x(1.0) > PLOT_W / 2.0 {
            (one - 4.0, "end")
        } else {
            (one + 4.0, "start")
        };
        let _ = write!(
            body,
            r#"<line x1="{one:.1}" y1="{}" x2="{one:.1}" y2="{bottom}" stroke="black" stroke-width="1.5" stroke-dasharray="5,3"/><text x="{lx:.1}" y="{}" font-size="11" text-anchor="{anchor}">1.0 = best peer</text>"#,
            top - 10.0,
            top - 3.0
        );
        body.push_str(&values);
        y = bottom + 28.0;
    }
    let height = y.ceil();

    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="DejaVu Sans Mono, Liberation Mono, monospace" font-size="{FONT}">"#
    );
    let _ = write!(
        s,
        r##"<rect width="100%" height="100%" fill="white"/><text x="{MARGIN}" y="22" font-size="14" font-weight="bold">{title}</text><text x="{MARGIN}" y="40" fill="#495057">{}</text>"##,
        xml_escape(caption)
    );
    // Legend.
    let _ = write!(
        s,
        r#"<rect x="{MARGIN}" y="50" width="12" height="12" fill="{OURS}"/><text x="{}" y="60">ksync</text><rect x="{}" y="50" width="12" height="12" fill="{PEER}"/><text x="{}" y="60">peer (the best peer of a scenario is 1.0; longer bar = faster)</text>"#,
        MARGIN + 16.0,
        MARGIN + 80.0,
        MARGIN + 96.0
    );
    s.push_str(&body);
    s.push_str("</svg>\n");
    s
}

/// Two significant digits at least: 4.20e-3, 0.58, 1.00, 12.3, 500.
fn fmt_ratio(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else if v >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.2e}")
    }
}

/// "measured on <CPU model>, <n> CPUs, <date> UTC".
fn caption() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "an unknown CPU".to_string());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    format!("measured on {cpu}, {cpus} CPUs available, {y:04}-{m:02}-{d:02} UTC")
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(group: &str, scenario: &str, impl_name: &str, ops: f64) -> Row {
        Row {
            group: group.into(),
            scenario: scenario.into(),
            impl_name: impl_name.into(),
            threads: 1,
            ops_per_sec: ops,
            ns_per_op: 1e9 / ops,
            fairness: None,
            cpu_ns_per_side: None,
            line_round_trip_ns: None,
        }
    }

    fn sample() -> Vec<Row> {
        vec![
            row("spinlock", "uncontended", "ksync::SpinLock", 90.0),
            row("spinlock", "uncontended", "parking_lot::Mutex", 100.0),
            row(
                "irq",
                "local_irq_save+restore",
                "ksync::local_irq_save",
                5000.0,
            ),
            row(
                "irq",
                "local_irq_save+restore",
                "pthread_sigmask <pair>",
                10.0,
            ),
            row(
                "rcu",
                "read lock+unlock, a long scenario name",
                "ksync::rcu_read_lock",
                300.0,
            ),
            row(
                "rcu",
                "read lock+unlock, a long scenario name",
                "crossbeam_epoch::pin",
                100.0,
            ),
        ]
    }

    #[test]
    fn one_panel_per_group_with_its_own_scale() {
        let s = svg_with_caption(&sample(), "measured on a test");
        for g in ["spinlock", "irq", "rcu"] {
            assert_eq!(s.matches(&format!(">{g}</text>")).count(), 1, "{g}");
        }
        assert_eq!(s.matches("1.0 = best peer").count(), 3);
        // irq spans 500x: log scale; the others linear.
        assert_eq!(s.matches("(log scale)").count(), 1);
        assert_eq!(s.matches("(linear scale)").count(), 2);
        assert!(s.contains("500x") && s.contains("measured on a test"));
        assert!(s.contains("&lt;pair&gt;"), "labels are escaped");
    }

    #[test]
    fn labels_fit_left_of_the_plot_and_values_right() {
        let rows = sample();
        let s = svg_with_caption(&rows, "c");
        let width: f64 = s
            .split("width=\"")
            .nth(1)
            .and_then(|w| w.split('"').next())
            .and_then(|w| w.parse().ok())
            .expect("svg width");
        let longest = rows
            .iter()
            .map(|r| {
                format!("{} · {} t{}", r.impl_name, r.scenario, r.threads)
                    .chars()
                    .count()
            })
            .max()
            .unwrap() as f64;
        // The label column starts at MARGIN, so the longest label ends before
        // the plot; the widest bar and its value end inside the picture.
        let plot_x = MARGIN + longest * CHAR_W + 8.0;
        assert!(plot_x + PLOT_W + VALUE_W <= width);
    }

    #[test]
    fn scales() {
        assert_eq!(
            Scale::for_ratios(&[0.5, 1.0, 2.0]),
            Scale::Linear { max: 2.1 }
        );
        assert_eq!(
            Scale::for_ratios(&[0.004, 1.0, 3.0]),
            Scale::Log { lo: -3, hi: 1 }
        );
        assert_eq!(
            Scale::for_ratios(&[1.0, 500.0]),
            Scale::Log { lo: -1, hi: 3 }
        );
        let log = Scale::Log { lo: -2, hi: 2 };
        assert_eq!(log.x(1.0), PLOT_W / 2.0);
        assert_eq!(log.x(0.0), 0.0);
        assert_eq!(Scale::Linear { max: 2.0 }.x(1.0), PLOT_W / 2.0);
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }
}
