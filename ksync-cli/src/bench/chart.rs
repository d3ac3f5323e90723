//! A dependency-free SVG bar chart of benchmark ratios.

use super::{Row, is_ours};
use std::fmt::Write;

/// Draws one bar per row: its throughput relative to the best peer of its
/// scenario, ksync's bars in one colour and the peers' in another.
pub fn svg(rows: &[Row]) -> String {
    let bar_h = 16.0;
    let gap = 6.0;
    let left = 430.0;
    let width = 900.0;
    let plot_w = width - left - 60.0;
    let height = 60.0 + rows.len() as f64 * (bar_h + gap);
    let ratio = |r: &Row| {
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
    };
    let max = rows.iter().map(ratio).fold(1.0, f64::max);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="monospace" font-size="12">"#
    );
    let _ = write!(
        s,
        r#"<text x="10" y="20" font-size="14">ksync bench: throughput relative to the best peer (1.0 = line)</text>"#
    );
    let one = left + plot_w / max;
    let _ = write!(
        s,
        r#"<line x1="{one}" y1="30" x2="{one}" y2="{}" stroke="black" stroke-dasharray="4"/>"#,
        height - 10.0
    );
    for (i, r) in rows.iter().enumerate() {
        let y = 40.0 + i as f64 * (bar_h + gap);
        let v = ratio(r);
        let w = plot_w * v / max;
        let color = if is_ours(&r.impl_name) {
            "#d9480f"
        } else {
            "#868e96"
        };
        let label = format!("{}/{} t{} {}", r.group, r.scenario, r.threads, r.impl_name);
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text><rect x="{left}" y="{y}" width="{w:.1}" height="{bar_h}" fill="{color}"/><text x="{}" y="{}">{v:.2}x</text>"#,
            left - 6.0,
            y + 12.0,
            xml_escape(&label),
            left + w + 4.0,
            y + 12.0
        );
    }
    s.push_str("</svg>\n");
    s
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
