//! Charts drawn on the server as SVG: no script, no library, and only
//! presentation attributes and classes (the page policy forbids inline
//! style). Each chart has a title and description for screen readers, and
//! the page shows the same figures as text.

use maud::{Markup, html};

/// One bar: label, value, and the class that colours it.
pub struct Bar<'a> {
    pub label: &'a str,
    pub value: f64,
    pub class: &'a str,
}

/// A horizontal bar chart.
pub fn bars(id: &str, title: &str, desc: &str, data: &[Bar], unit: &str) -> Markup {
    let row = 30.0;
    let label_w = 150.0;
    let chart_w = 330.0;
    let width = label_w + chart_w + 70.0;
    let height = row * data.len() as f64 + 10.0;
    let max = data
        .iter()
        .map(|b| b.value)
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let title_id = format!("{id}-t");
    let desc_id = format!("{id}-d");
    html! {
        svg class="chart" viewBox={"0 0 " (width) " " (height)} width=(width) height=(height)
            role="img" aria-labelledby={(title_id) " " (desc_id)} xmlns="http://www.w3.org/2000/svg" {
            title id=(title_id) { (title) }
            desc id=(desc_id) { (desc) }
            @for (i, b) in data.iter().enumerate() {
                @let y = 5.0 + row * i as f64;
                @let w = (b.value / max * chart_w).max(if b.value > 0.0 { 2.0 } else { 0.0 });
                text x=(label_w - 8.0) y=(y + 19.0) text-anchor="end" class="axis" { (b.label) }
                rect x=(label_w) y=(y + 4.0) width=(format!("{w:.1}")) height=(row - 10.0) rx="3" class={"bar " (b.class)} {}
                text x=(label_w + w + 6.0) y=(y + 19.0) class="value" { (fmt(b.value)) (unit) }
            }
        }
    }
}

fn fmt(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Counts of durations (milliseconds) in buckets with upper bounds (ms);
/// the last bucket takes everything longer.
pub fn histogram(
    values: &[i64],
    bounds: &[(i64, &'static str)],
    last: &'static str,
) -> Vec<(&'static str, f64)> {
    let mut out: Vec<(&'static str, f64)> = bounds.iter().map(|(_, l)| (*l, 0.0)).collect();
    out.push((last, 0.0));
    for v in values {
        let i = bounds
            .iter()
            .position(|(b, _)| v < b)
            .unwrap_or(bounds.len());
        if let Some(slot) = out.get_mut(i) {
            slot.1 += 1.0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_puts_each_duration_in_its_bucket_and_long_ones_last() {
        let h = histogram(
            &[10, 999, 1000, 5000, 99_999],
            &[(1000, "<1s"), (10_000, "<10s")],
            "longer",
        );
        let counts: Vec<f64> = h.iter().map(|(_, c)| *c).collect();
        assert_eq!(counts, vec![2.0, 2.0, 1.0]);
    }

    #[test]
    fn chart_labels_are_escaped() {
        let svg = bars(
            "x",
            "<t>",
            "d",
            &[Bar {
                label: "<script>",
                value: 1.0,
                class: "a",
            }],
            "",
        )
        .into_string();
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;"));
    }
}
