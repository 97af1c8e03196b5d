//! Hand-written SVG line plots: membership views over time, the dissemination curve of
//! user events, and the CDF of failure-detection latency.

use crate::report::Report;
use core::fmt::Write as _;
use std::path::Path;

const W: f64 = 720.0;
const H: f64 = 420.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 160.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 48.0;
const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
];

/// One line of a plot.
#[derive(Debug, Clone)]
pub struct Line {
    /// Legend text (empty: no legend entry).
    pub name: String,
    /// Points, in x order.
    pub points: Vec<(f64, f64)>,
    /// Stroke width.
    pub width: f64,
    /// Index into the palette.
    pub color: usize,
}

fn nice_step(range: f64) -> f64 {
    let raw = range / 6.0;
    if raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let m = if f < 1.5 {
        1.0
    } else if f < 3.5 {
        2.0
    } else if f < 7.5 {
        5.0
    } else {
        10.0
    };
    m * mag
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A line plot as an SVG document.
pub fn plot(title: &str, xlabel: &str, ylabel: &str, lines: &[Line], y_max: Option<f64>) -> String {
    let pts = lines.iter().flat_map(|l| l.points.iter());
    let (mut x0, mut x1, mut y1) = (f64::MAX, f64::MIN, f64::MIN);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        (x0, x1, y1) = (0.0, 1.0, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let y0 = 0.0;
    let y1 = y_max.unwrap_or(if y1 <= 0.0 { 1.0 } else { y1 * 1.05 });
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let sx = |x: f64| LEFT + (x - x0) / (x1 - x0) * pw;
    let sy = |y: f64| TOP + ph - (y - y0) / (y1 - y0) * ph;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
        LEFT + pw / 2.0,
        esc(title)
    );
    // Grid and ticks.
    let xs = nice_step(x1 - x0);
    let mut x = (x0 / xs).ceil() * xs;
    while x <= x1 + 1e-9 {
        let px = sx(x);
        let _ = writeln!(
            s,
            r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{:.1}" stroke="#eee"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            TOP + ph,
            TOP + ph + 16.0,
            trim(x)
        );
        x += xs;
    }
    let ys = nice_step(y1 - y0);
    let mut y = 0.0;
    while y <= y1 + 1e-9 {
        let py = sy(y);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + pw,
            LEFT - 6.0,
            py + 4.0,
            trim(y)
        );
        y += ys;
    }
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>"##
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        LEFT + pw / 2.0,
        H - 10.0,
        esc(xlabel)
    );
    let _ = writeln!(
        s,
        r#"<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">{}</text>"#,
        TOP + ph / 2.0,
        TOP + ph / 2.0,
        esc(ylabel)
    );
    let mut legend = 0;
    for l in lines {
        if l.points.is_empty() {
            continue;
        }
        let color = COLORS[l.color % COLORS.len()];
        let mut d = String::new();
        for &(x, y) in &l.points {
            let _ = write!(d, "{:.1},{:.1} ", sx(x), sy(y.min(y1)));
        }
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="{}" points="{}"/>"#,
            l.width,
            d.trim_end()
        );
        if !l.name.is_empty() {
            let ly = TOP + 14.0 + 18.0 * legend as f64;
            let lx = LEFT + pw + 12.0;
            let _ = writeln!(
                s,
                r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
                lx + 20.0,
                lx + 26.0,
                ly + 4.0,
                esc(&l.name)
            );
            legend += 1;
        }
    }
    s.push_str("</svg>\n");
    s
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

/// The empirical CDF of `values` as a step line, over `total` samples (more than
/// `values.len()` when some never happened: the line then stays below 1).
fn step_cdf(values: &[f64], total: usize) -> Vec<(f64, f64)> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = total.max(v.len()).max(1) as f64;
    let mut pts = vec![(0.0, 0.0)];
    for (i, &x) in v.iter().enumerate() {
        pts.push((x, i as f64 / n));
        pts.push((x, (i + 1) as f64 / n));
    }
    pts
}

/// Members alive in each view over time.
pub fn views(r: &Report) -> String {
    let mut lines = Vec::new();
    let col = |f: fn(&crate::measure::Sample) -> u32| -> Vec<(f64, f64)> {
        r.samples.iter().map(|s| (s.t, f64::from(f(s)))).collect()
    };
    let k = r.samples.first().map_or(0, |s| s.views.len());
    for v in 0..k {
        lines.push(Line {
            name: if v == 0 {
                "single views".into()
            } else {
                String::new()
            },
            points: r
                .samples
                .iter()
                .map(|s| (s.t, f64::from(s.views[v])))
                .collect(),
            width: 0.8,
            color: 7,
        });
    }
    lines.push(Line {
        name: "nodes up (truth)".into(),
        points: col(|s| s.up),
        width: 2.0,
        color: 0,
    });
    lines.push(Line {
        name: "min over views".into(),
        points: col(|s| s.min),
        width: 1.5,
        color: 1,
    });
    lines.push(Line {
        name: "median".into(),
        points: col(|s| s.median),
        width: 1.5,
        color: 2,
    });
    lines.push(Line {
        name: "max over views".into(),
        points: col(|s| s.max),
        width: 1.5,
        color: 3,
    });
    plot(
        &format!("{}: members alive in each view", r.scenario),
        "simulated seconds",
        "members (alive or suspect)",
        &lines,
        None,
    )
}

/// Fraction of live nodes holding each user event, by time since it was sent.
pub fn dissemination(r: &Report) -> String {
    let mut lines = Vec::new();
    for (i, (lat, expected)) in r.series.dissemination.iter().take(40).enumerate() {
        let n = (*expected).max(1) as f64;
        let mut pts = vec![(0.0, 0.0)];
        for (k, &t) in lat.iter().enumerate() {
            pts.push((t, (k + 1) as f64 / n));
        }
        lines.push(Line {
            name: if i == 0 {
                "one line per event".into()
            } else {
                String::new()
            },
            points: pts,
            width: 1.0,
            color: i,
        });
    }
    plot(
        &format!("{}: dissemination of user events", r.scenario),
        "seconds since sent",
        "fraction of live nodes holding it",
        &lines,
        Some(1.0),
    )
}

/// CDF of failure-detection latency, first view and all views, over every counted crash
/// (crashes restarted before every view failed them are not counted): a crash never
/// detected keeps the line below 1.
pub fn detection_cdf(r: &Report) -> String {
    let total = r.series.crashes_counted;
    let lines = vec![
        Line {
            name: "first view".into(),
            points: step_cdf(&r.series.detect_first, total),
            width: 2.0,
            color: 0,
        },
        Line {
            name: "all views".into(),
            points: step_cdf(&r.series.detect_all, total),
            width: 2.0,
            color: 1,
        },
    ];
    plot(
        &format!("{}: failure detection latency", r.scenario),
        "seconds after the crash",
        &format!("fraction of the {total} crashes detected"),
        &lines,
        Some(1.0),
    )
}

/// Writes `views.svg`, `dissemination.svg` (if events were sent) and `detection.svg` (if
/// nodes crashed) into `dir`, prefixed with the scenario name.
pub fn write_all(r: &Report, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let name = r
        .scenario
        .replace(|c: char| !c.is_alphanumeric() && c != '-', "_");
    std::fs::write(dir.join(format!("{name}-views.svg")), views(r))?;
    if !r.series.dissemination.is_empty() {
        std::fs::write(
            dir.join(format!("{name}-dissemination.svg")),
            dissemination(r),
        )?;
    }
    if r.series.crashes_counted > 0 {
        std::fs::write(dir.join(format!("{name}-detection.svg")), detection_cdf(r))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cdf_over_more_samples_than_values_stays_below_one() {
        // Two of four crashes detected: the line ends at 0.5, not 1.
        let pts = step_cdf(&[2.0, 1.0], 4);
        assert_eq!(pts.last(), Some(&(2.0, 0.5)));
        assert_eq!(step_cdf(&[1.0], 1).last(), Some(&(1.0, 1.0)));
    }
}
