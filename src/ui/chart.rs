//! Charts drawn by the server as inline SVG: a service's pass-rate and duration trends and
//! its most flaky tests.
//!
//! No chart library and no script: a chart is a pure function from numbers and labels to an
//! SVG string, so it renders the same without JavaScript, prints, and is unit-tested here.
//! Colours come from CSS classes (`.chart .bar.ok`, ...) so the stylesheet owns the look.
//! Every label is text from test output or run names, so every one is XML-escaped: the SVG is
//! inserted into the page as markup and must not carry any of its own.

use std::fmt::Write;

/// Width and height of the drawing area in SVG user units. The SVG has no size of its own:
/// it takes its container's width (`width: 100%`) and keeps this aspect ratio, and the
/// stylesheet enlarges its text on narrow screens, where it is drawn smaller.
const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 200.0;
/// Room for the y-axis labels on the left and the x labels below.
const LEFT: f64 = 64.0;
const RIGHT: f64 = 28.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 34.0;

/// One run on a trend chart, oldest first.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// Short label under the axis (every few points get one), e.g. `05-01`.
    pub label: String,
    /// The value; `None` leaves a gap (a run that produced no results).
    pub value: Option<f64>,
    /// Tooltip: what the point is (`demo-x7k2q9bd: 83%`).
    pub title: String,
    /// Where a click goes (the run page).
    pub href: Option<String>,
    /// CSS class of the mark (`ok`, `bad`, `flaky`, `other`).
    pub class: &'static str,
}

/// How the y axis is scaled and labelled.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Axis {
    /// 0–100, labelled `20%`.
    Percent,
    /// Seconds, fitted to the data and labelled in the one unit that suits the largest
    /// value (see [`time_unit`]).
    Duration,
    /// Plain numbers fitted to the data.
    Count,
}

/// A unit of time for a duration axis: its name and its length in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimeUnit {
    pub name: &'static str,
    pub seconds: f64,
}

/// The unit a duration axis whose largest value is `max_seconds` is labelled in: `ms` under
/// a second, `s` under five minutes, `min` under five hours, else `h` — so the ticks are
/// whole numbers of the unit for all but the shortest series.
pub fn time_unit(max_seconds: f64) -> TimeUnit {
    let unit = |name, seconds| TimeUnit { name, seconds };
    match max_seconds {
        m if m < 1.0 => unit("ms", 0.001),
        m if m < 300.0 => unit("s", 1.0),
        m if m < 5.0 * 3600.0 => unit("min", 60.0),
        _ => unit("h", 3600.0),
    }
}

/// Ticks of a y axis from 0 to at least `data_max`, each with its label.
pub fn axis_ticks(axis: Axis, data_max: f64) -> Vec<(f64, String)> {
    match axis {
        Axis::Percent => ticks(100.0)
            .into_iter()
            .map(|t| (t, format!("{t:.0}%")))
            .collect(),
        Axis::Count => labelled(ticks(data_max), 1.0, ""),
        Axis::Duration => {
            let unit = time_unit(data_max);
            labelled(ticks(data_max / unit.seconds), unit.seconds, unit.name)
        }
    }
}

/// Tick values (in a unit of `per_unit` base units) as base values with labels written with
/// just enough decimals to tell the ticks apart.
fn labelled(values: Vec<f64>, per_unit: f64, unit: &str) -> Vec<(f64, String)> {
    let step = values.get(1).copied().unwrap_or(1.0);
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    values
        .into_iter()
        .map(|v| {
            let label = format!("{v:.decimals$} {unit}").trim().to_string();
            (v * per_unit, label)
        })
        .collect()
}

/// XML-escapes text for element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not allowed in XML 1.0; test output can hold them.
            c if c.is_control() && !matches!(c, '\n' | '\t' | '\r') => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Tick values for an axis from 0 to at least `max`: a 1-2-5 step giving at most six ticks.
pub fn ticks(max: f64) -> Vec<f64> {
    let max = if max.is_finite() && max > 0.0 { max } else { 1.0 };
    let raw = max / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let n = (max / step).ceil() as usize;
    (0..=n).map(|i| i as f64 * step).collect()
}

fn open_svg(out: &mut String, class: &str, label: &str, height: f64) {
    // No width or height: the chart takes its container's width (CSS) at the viewBox's ratio.
    let _ = write!(
        out,
        r#"<svg class="chart {class}" viewBox="0 0 {WIDTH} {height}" preserveAspectRatio="xMinYMin meet" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg">"#,
        escape(label)
    );
    let _ = write!(out, "<title>{}</title>", escape(label));
}

/// Gridlines and y labels; returns the function mapping a value to its y coordinate.
fn y_axis(out: &mut String, axis: Axis, data_max: f64) -> impl Fn(f64) -> f64 + use<> {
    let ticks = axis_ticks(axis, data_max);
    let top = ticks
        .last()
        .map(|t| t.0)
        .filter(|t| *t > 0.0)
        .expect("ticks always has 0 and at least one step above it");
    let plot_h = HEIGHT - TOP - BOTTOM;
    let y = move |v: f64| TOP + plot_h * (1.0 - (v / top).clamp(0.0, 1.0));
    for (i, (t, label)) in ticks.iter().enumerate() {
        let ty = y(*t);
        // Every other label is minor: narrow screens, where the text is drawn larger, skip it.
        let minor = if i % 2 == 1 { " minor" } else { "" };
        let _ = write!(
            out,
            r#"<line class="grid" x1="{LEFT}" x2="{}" y1="{ty:.1}" y2="{ty:.1}"/><text class="tick{minor}" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            WIDTH - RIGHT,
            LEFT - 6.0,
            ty + 4.0,
            escape(label)
        );
    }
    y
}

/// X labels: evenly spread, always including the newest, as many as fit side by side; every
/// other one is minor (left out on narrow screens).
fn x_labels(out: &mut String, points: &[Point], x: impl Fn(usize) -> f64) {
    let longest = points.iter().map(|p| p.label.chars().count()).max().unwrap_or(0);
    // About 6.5 units a character at the ticks' size, and a gap.
    let fit = ((WIDTH - LEFT - RIGHT) / (longest as f64 * 6.5 + 14.0))
        .floor()
        .max(2.0) as usize;
    let every = points.len().div_ceil(fit.min(8)).max(1);
    for (i, p) in points.iter().enumerate() {
        let from_newest = points.len() - 1 - i;
        if from_newest.is_multiple_of(every) {
            let minor = if (from_newest / every) % 2 == 1 {
                " minor"
            } else {
                ""
            };
            // Labels at the ends lean inwards, so that the edge cuts none.
            let at = x(i);
            let anchor = if at > WIDTH - RIGHT - 40.0 {
                "end"
            } else if at < LEFT + 40.0 {
                "start"
            } else {
                "middle"
            };
            let _ = write!(
                out,
                r#"<text class="tick x{minor}" x="{at:.1}" y="{}" text-anchor="{anchor}">{}</text>"#,
                HEIGHT - 6.0,
                escape(&p.label)
            );
        }
    }
}

fn mark_link(out: &mut String, p: &Point, mark: &str) {
    match &p.href {
        Some(href) => {
            let _ = write!(
                out,
                r#"<a href="{}"><title>{}</title>{mark}</a>"#,
                escape(href),
                escape(&p.title)
            );
        }
        None => {
            let _ = write!(out, "<g><title>{}</title>{mark}</g>", escape(&p.title));
        }
    }
}

fn empty_chart(class: &str, label: &str) -> String {
    let mut out = String::new();
    open_svg(&mut out, class, label, HEIGHT);
    let _ = write!(
        out,
        r#"<text class="empty" x="{}" y="{}" text-anchor="middle">No runs with results yet</text></svg>"#,
        WIDTH / 2.0,
        HEIGHT / 2.0
    );
    out
}

/// A line through the points (broken where a value is missing), a dot per point.
pub fn line_chart(label: &str, points: &[Point], axis: Axis) -> String {
    if points.iter().all(|p| p.value.is_none()) {
        return empty_chart("line", label);
    }
    let mut out = String::new();
    open_svg(&mut out, "line", label, HEIGHT);
    let data_max = points.iter().filter_map(|p| p.value).fold(0.0, f64::max);
    let y = y_axis(&mut out, axis, data_max);
    let plot_w = WIDTH - LEFT - RIGHT;
    let step = plot_w / points.len().max(2).saturating_sub(1) as f64;
    let x = |i: usize| {
        if points.len() == 1 {
            LEFT + plot_w / 2.0
        } else {
            LEFT + step * i as f64
        }
    };
    // One polyline per unbroken stretch of values.
    let mut stretch: Vec<String> = Vec::new();
    let flush = |stretch: &mut Vec<String>, out: &mut String| {
        if stretch.len() > 1 {
            let _ = write!(out, r#"<polyline class="trend" points="{}"/>"#, stretch.join(" "));
        }
        stretch.clear();
    };
    for (i, p) in points.iter().enumerate() {
        match p.value {
            Some(v) => stretch.push(format!("{:.1},{:.1}", x(i), y(v))),
            None => flush(&mut stretch, &mut out),
        }
    }
    flush(&mut stretch, &mut out);
    for (i, p) in points.iter().enumerate() {
        if let Some(v) = p.value {
            let dot = format!(
                r#"<circle class="dot {}" cx="{:.1}" cy="{:.1}" r="4"/>"#,
                p.class,
                x(i),
                y(v)
            );
            mark_link(&mut out, p, &dot);
        }
    }
    x_labels(&mut out, points, x);
    out.push_str("</svg>");
    out
}

/// A vertical bar per point.
pub fn bar_chart(label: &str, points: &[Point], axis: Axis) -> String {
    if points.iter().all(|p| p.value.is_none()) {
        return empty_chart("bars", label);
    }
    let mut out = String::new();
    open_svg(&mut out, "bars", label, HEIGHT);
    let data_max = points.iter().filter_map(|p| p.value).fold(0.0, f64::max);
    let y = y_axis(&mut out, axis, data_max);
    let slot = (WIDTH - LEFT - RIGHT) / points.len().max(1) as f64;
    let bar_w = (slot * 0.7).min(28.0);
    let x = |i: usize| LEFT + slot * (i as f64 + 0.5);
    for (i, p) in points.iter().enumerate() {
        if let Some(v) = p.value {
            let top = y(v);
            // A zero still shows as a sliver, so the run is visibly there.
            let h = (y(0.0) - top).max(1.5);
            let bar = format!(
                r#"<rect class="bar {}" x="{:.1}" y="{:.1}" width="{bar_w:.1}" height="{h:.1}" rx="2"/>"#,
                p.class,
                x(i) - bar_w / 2.0,
                y(0.0) - h
            );
            mark_link(&mut out, p, &bar);
        }
    }
    x_labels(&mut out, points, x);
    out.push_str("</svg>");
    out
}

/// One row of a horizontal bar chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub label: String,
    pub value: u32,
    /// Written after the bar (`3 of 20 runs`).
    pub note: String,
}

/// Horizontal bars, one row per item (the most flaky tests), in the order given, each as long
/// as its share of `out_of` (the runs counted): "1 of 3" fills a third of the row, never all
/// of it. HTML rows, each with a text-free SVG bar that stretches to any width, so names stay
/// readable text at every screen size (the stylesheet cuts long ones; the tooltip has all).
pub fn row_chart(label: &str, rows: &[Row], out_of: u32) -> String {
    let whole = f64::from(out_of.max(rows.iter().map(|r| r.value).max().unwrap_or(0)).max(1));
    let mut out = format!(r#"<ol class="chart rows" aria-label="{}">"#, escape(label));
    for r in rows {
        let share = f64::from(r.value) / whole * 100.0;
        let _ = write!(
            out,
            r#"<li title="{title}"><span class="label">{name}</span><svg class="row-bar" viewBox="0 0 100 10" preserveAspectRatio="none" aria-hidden="true" xmlns="http://www.w3.org/2000/svg"><rect class="track" x="0" y="0" width="100" height="10"/><rect class="bar flaky" x="0" y="0" width="{share:.2}" height="10"/></svg><span class="note">{note}</span></li>"#,
            title = escape(&format!("{}: {}", r.label, r.note)),
            name = escape(&r.label),
            note = escape(&r.note),
        );
    }
    out.push_str("</ol>");
    out
}

/// A thin bar split into coloured segments by count (a run's verdicts): no text, so it may
/// stretch to any width.
pub fn stacked_bar(segments: &[(&str, u32)]) -> String {
    let total: u32 = segments.iter().map(|(_, n)| n).sum();
    let mut out = String::from(
        r#"<svg class="stack" viewBox="0 0 100 8" preserveAspectRatio="none" aria-hidden="true" xmlns="http://www.w3.org/2000/svg">"#,
    );
    if total == 0 {
        out.push_str(r#"<rect class="seg none" x="0" y="0" width="100" height="8"/>"#);
    }
    let mut x = 0.0;
    for (class, n) in segments.iter().filter(|(_, n)| *n > 0) {
        let w = f64::from(*n) * 100.0 / f64::from(total);
        let _ = write!(
            out,
            r#"<rect class="seg {}" x="{x:.2}" y="0" width="{w:.2}" height="8"><title>{n} {}</title></rect>"#,
            escape(class),
            escape(class)
        );
        x += w;
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(value: Option<f64>, title: &str) -> Point {
        Point {
            label: "05-01".into(),
            value,
            title: title.into(),
            href: Some("/runs/demo-1".into()),
            class: "ok",
        }
    }

    const PERCENT: Axis = Axis::Percent;

    fn labels(axis: Axis, max: f64) -> Vec<String> {
        axis_ticks(axis, max).into_iter().map(|(_, l)| l).collect()
    }

    fn assert_distinct(labels: &[String]) {
        let set: std::collections::BTreeSet<&String> = labels.iter().collect();
        assert_eq!(set.len(), labels.len(), "no label repeats: {labels:?}");
    }

    #[test]
    fn a_sub_second_series_is_labelled_in_milliseconds_without_repeated_zeros() {
        let l = labels(Axis::Duration, 0.35);
        assert_eq!(l, ["0 ms", "100 ms", "200 ms", "300 ms", "400 ms"]);
        assert_distinct(&l);
        let tiny = labels(Axis::Duration, 0.004);
        assert_distinct(&tiny);
        assert!(tiny.iter().all(|t| t.ends_with(" ms")), "{tiny:?}");
        // The bar of a 350 ms run is drawn at its height, not at zero.
        let p = Point {
            value: Some(0.35),
            ..point(None, "a")
        };
        let svg = bar_chart("Duration", &[p], Axis::Duration);
        assert!(svg.contains(">300 ms</text>") && !svg.contains(">0s<"), "{svg}");
    }

    #[test]
    fn a_minutes_long_series_is_labelled_in_seconds_then_minutes() {
        let l = labels(Axis::Duration, 150.0);
        assert_eq!(l, ["0 s", "50 s", "100 s", "150 s"]);
        let l = labels(Axis::Duration, 12.0 * 60.0);
        assert_eq!(l, ["0 min", "5 min", "10 min", "15 min"]);
        let ticks = axis_ticks(Axis::Duration, 12.0 * 60.0);
        assert_eq!(ticks[1].0, 300.0, "tick values stay in seconds");
    }

    #[test]
    fn a_multi_hour_series_is_labelled_in_hours() {
        let l = labels(Axis::Duration, 7.0 * 3600.0);
        assert_eq!(l, ["0 h", "2 h", "4 h", "6 h", "8 h"]);
        let l = labels(Axis::Duration, 2.5 * 3600.0);
        assert_eq!(l, ["0 min", "50 min", "100 min", "150 min"]);
        let l = labels(Axis::Duration, 0.0025);
        assert_eq!(l[1], "0.5 ms", "decimals only when the step needs them");
        assert_distinct(&l);
        assert_eq!(
            labels(Axis::Percent, 40.0).last().map(String::as_str),
            Some("100%")
        );
    }

    #[test]
    fn x_labels_never_crowd_and_alternate_ones_are_minor() {
        let points: Vec<Point> = (0..30)
            .map(|i| Point {
                label: format!("May {} 14:30", i + 1),
                ..point(Some(1.0), "a")
            })
            .collect();
        let svg = bar_chart("Duration", &points, Axis::Duration);
        let x_labels = svg.matches(r#"class="tick x"#).count();
        assert!(
            (2..=6).contains(&x_labels),
            "{x_labels} long labels fit side by side"
        );
        assert!(svg.contains(">May 30 14:30</text>"), "the newest is labelled");
        assert!(svg.contains(r#"class="tick x minor""#));
    }

    #[test]
    fn charts_have_no_size_of_their_own_and_fit_their_container() {
        let svg = line_chart("Pass rate", &[point(Some(50.0), "a")], PERCENT);
        assert!(svg.contains(r#"viewBox="0 0 640 200""#), "{svg}");
        assert!(!svg.contains(" width=\"640\""), "{svg}");
    }

    #[test]
    fn escape_neutralises_markup_quotes_and_control_characters() {
        assert_eq!(
            escape(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(escape("a\u{1b}[31mb"), "a\u{FFFD}[31mb");
    }

    #[test]
    fn ticks_use_round_steps_and_cover_the_maximum() {
        assert_eq!(ticks(100.0), vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        assert_eq!(ticks(7.0), vec![0.0, 2.0, 4.0, 6.0, 8.0]);
        assert_eq!(ticks(130.0), vec![0.0, 50.0, 100.0, 150.0]);
        assert_eq!(ticks(0.0).len(), 6, "no data still gets an axis");
        assert!(ticks(1234.0).last().unwrap() >= &1234.0);
    }

    #[test]
    fn a_line_chart_breaks_at_missing_values_and_links_each_dot() {
        let points = vec![
            point(Some(100.0), "a"),
            point(Some(50.0), "b"),
            point(None, "c"),
            point(Some(75.0), "d"),
            point(Some(80.0), "e"),
        ];
        let svg = line_chart("Pass rate", &points, PERCENT);
        assert!(svg.starts_with("<svg class=\"chart line\""), "{svg}");
        assert!(svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert_eq!(svg.matches("<circle").count(), 4);
        assert_eq!(svg.matches(r#"<a href="/runs/demo-1">"#).count(), 4);
        assert!(svg.contains(">100%</text>") && svg.contains(">0%</text>"));
    }

    #[test]
    fn a_full_pass_sits_on_the_top_gridline_and_zero_on_the_bottom() {
        let svg = line_chart("x", &[point(Some(100.0), "a"), point(Some(0.0), "b")], PERCENT);
        assert!(svg.contains(&format!(r#"cy="{TOP:.1}""#)), "{svg}");
        assert!(svg.contains(&format!(r#"cy="{:.1}""#, HEIGHT - BOTTOM)), "{svg}");
    }

    #[test]
    fn labels_and_titles_from_test_output_are_escaped() {
        let evil = r#"<script>alert(1)</script>"#;
        let mut p = point(Some(3.0), evil);
        p.label = evil.into();
        p.href = Some(r#"/runs/x"><script>"#.into());
        for svg in [
            line_chart(evil, std::slice::from_ref(&p), Axis::Count),
            bar_chart(evil, std::slice::from_ref(&p), Axis::Count),
            row_chart(
                evil,
                &[Row {
                    label: evil.into(),
                    value: 2,
                    note: evil.into(),
                }],
                3,
            ),
        ] {
            assert!(!svg.contains("<script>"), "{svg}");
            assert!(svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{svg}");
        }
    }

    #[test]
    fn bars_scale_to_the_largest_value_and_zero_is_still_visible() {
        let points = vec![point(Some(0.0), "a"), point(Some(60.0), "b")];
        let svg = bar_chart("Duration", &points, Axis::Duration);
        assert_eq!(svg.matches("<rect class=\"bar ok\"").count(), 2, "{svg}");
        assert!(
            svg.contains(r#"height="1.5""#),
            "a zero bar keeps a sliver: {svg}"
        );
        assert!(svg.contains(">60 s</text>"), "{svg}");
    }

    #[test]
    fn no_values_draws_a_note_instead_of_an_empty_grid() {
        let svg = line_chart("Pass rate", &[point(None, "a")], PERCENT);
        assert!(svg.contains("No runs with results yet"), "{svg}");
        assert!(!svg.contains("<polyline"));
    }

    #[test]
    fn a_stacked_bar_splits_the_width_by_count() {
        let svg = stacked_bar(&[("passed", 3), ("failed", 1), ("skipped", 0)]);
        assert!(
            svg.contains(r#"class="seg passed" x="0.00" y="0" width="75.00""#),
            "{svg}"
        );
        assert!(
            svg.contains(r#"class="seg failed" x="75.00" y="0" width="25.00""#),
            "{svg}"
        );
        assert!(!svg.contains("skipped"), "empty segments are left out: {svg}");
        assert!(stacked_bar(&[("passed", 0)]).contains("seg none"));
    }

    #[test]
    fn flaky_rows_are_as_long_as_their_share_of_the_runs_and_keep_whole_names() {
        let long = "a very long test name that goes on and on and on past the margin";
        let rows = [
            Row {
                label: long.into(),
                value: 2,
                note: "2 of 3 runs".into(),
            },
            Row {
                label: "other".into(),
                value: 1,
                note: "1 of 3 runs".into(),
            },
        ];
        let html = row_chart("Flaky", &rows, 3);
        assert!(
            html.contains(r#"class="bar flaky" x="0" y="0" width="66.67""#),
            "{html}"
        );
        assert!(
            html.contains(r#"class="bar flaky" x="0" y="0" width="33.33""#),
            "{html}"
        );
        assert!(
            !html.contains(r#"width="100.00""#),
            "no row is drawn full: {html}"
        );
        assert!(
            html.contains(&format!(r#"title="{long}: 2 of 3 runs""#)),
            "{html}"
        );
        assert!(html.contains(&format!(">{long}</span>")), "{html}");
    }
}
