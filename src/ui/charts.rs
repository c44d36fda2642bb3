//! The dashboard's charts: attempts bucketed by time (pure), drawn as SVG
//! on the server. Every value is a number the server computed, and the
//! markup is built with maud, which escapes whatever it is given.

use maud::{html, Markup};

/// One attempt as the charts see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    pub started_at_ms: i64,
    pub duration_ms: i64,
    pub succeeded: bool,
}

/// Attempts of one slice of a window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bucket {
    pub attempts: usize,
    pub succeeded: usize,
    pub latency_p50_ms: Option<i64>,
}

impl Bucket {
    pub fn success_rate(&self) -> Option<f64> {
        (self.attempts > 0).then(|| self.succeeded as f64 / self.attempts as f64)
    }
}

/// `points` of the `window_ms` before `now_ms`, in `count` equal slices,
/// oldest first; points outside the window are left out.
pub fn buckets(points: &[Point], now_ms: i64, window_ms: i64, count: usize) -> Vec<Bucket> {
    let count = count.max(1);
    let start = now_ms - window_ms;
    let width = (window_ms / count as i64).max(1);
    let mut durations: Vec<Vec<i64>> = vec![Vec::new(); count];
    let mut succeeded = vec![0; count];
    for point in points {
        if point.started_at_ms < start || point.started_at_ms > now_ms {
            continue;
        }
        let slot = usize::try_from((point.started_at_ms - start) / width)
            .unwrap_or(0)
            .min(count - 1);
        durations[slot].push(point.duration_ms);
        if point.succeeded {
            succeeded[slot] += 1;
        }
    }
    durations
        .into_iter()
        .zip(succeeded)
        .map(|(mut slot, succeeded)| {
            slot.sort_unstable();
            Bucket {
                attempts: slot.len(),
                succeeded,
                latency_p50_ms: slot.get(slot.len() / 2).copied(),
            }
        })
        .collect()
}

const WIDTH: f64 = 240.0;
const HEIGHT: f64 = 48.0;

/// Success rate per bucket as bars from 0 to 100 %: green when all
/// succeeded, red when none did, amber between; an empty bucket is a gap.
pub fn success_chart(buckets: &[Bucket], label: &str) -> Markup {
    let slot = WIDTH / buckets.len().max(1) as f64;
    html! {
        svg.chart viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(label) {
            title { (label) }
            line x1="0" y1=(HEIGHT) x2=(WIDTH) y2=(HEIGHT) class="axis" {}
            @for (n, bucket) in buckets.iter().enumerate() {
                @if let Some(rate) = bucket.success_rate() {
                    @let height = (rate * (HEIGHT - 2.0)).max(2.0);
                    rect x=(format!("{:.1}", n as f64 * slot + 1.0)) y=(format!("{:.1}", HEIGHT - height))
                        width=(format!("{:.1}", (slot - 2.0).max(1.0))) height=(format!("{height:.1}"))
                        class=(rate_class(rate)) {
                        title { (format!("{:.0} % of {} attempts", rate * 100.0, bucket.attempts)) }
                    }
                }
            }
        }
    }
}

/// The median latency per bucket as a line, scaled to the largest.
pub fn latency_chart(buckets: &[Bucket], label: &str) -> Markup {
    let slot = WIDTH / buckets.len().max(1) as f64;
    let largest = buckets
        .iter()
        .filter_map(|bucket| bucket.latency_p50_ms)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let points: Vec<(f64, f64)> = buckets
        .iter()
        .enumerate()
        .filter_map(|(n, bucket)| {
            let latency = bucket.latency_p50_ms? as f64;
            let x = n as f64 * slot + slot / 2.0;
            let y = HEIGHT - 2.0 - latency / largest * (HEIGHT - 4.0);
            Some((x, y))
        })
        .collect();
    let line: Vec<String> = points
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect();
    html! {
        svg.chart viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(label) {
            title { (label) ", largest median " (largest) " ms" }
            line x1="0" y1=(HEIGHT) x2=(WIDTH) y2=(HEIGHT) class="axis" {}
            polyline points=(line.join(" ")) class="latency" {}
            // A lone slice has no line: each median is a dot as well.
            @for (x, y) in &points {
                circle cx=(format!("{x:.1}")) cy=(format!("{y:.1}")) r="2" class="latency" {}
            }
        }
    }
}

/// `ok` at 99 % and more, `bad` under 50 %, `warn` between.
pub fn rate_class(rate: f64) -> &'static str {
    if rate >= 0.99 {
        "ok"
    } else if rate < 0.5 {
        "bad"
    } else {
        "warn"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(at: i64, duration: i64, succeeded: bool) -> Point {
        Point {
            started_at_ms: at,
            duration_ms: duration,
            succeeded,
        }
    }

    #[test]
    fn attempts_fall_in_their_slice_of_the_window() {
        let now = 10_000;
        let points = [
            point(500, 1, true),     // before the window
            point(1_000, 10, true),  // first slice
            point(1_100, 30, false), // first slice
            point(5_999, 20, true),  // second slice... of 3 slices of 3,000
            point(10_000, 5, false), // the last instant belongs to the last slice
        ];
        let buckets = buckets(&points, now, 9_000, 3);
        assert_eq!(buckets.len(), 3);
        assert_eq!(buckets[0].attempts, 2);
        assert_eq!(buckets[0].succeeded, 1);
        assert_eq!(buckets[0].success_rate(), Some(0.5));
        assert_eq!(buckets[0].latency_p50_ms, Some(30));
        assert_eq!(buckets[1].attempts, 1);
        assert_eq!(buckets[2].attempts, 1);
        assert_eq!(buckets[2].success_rate(), Some(0.0));
    }

    #[test]
    fn an_empty_window_draws_no_bar() {
        let buckets = buckets(&[], 10_000, 9_000, 4);
        assert!(buckets.iter().all(|bucket| bucket.success_rate().is_none()));
        let svg = success_chart(&buckets, "success").into_string();
        assert!(!svg.contains("<rect"), "{svg}");
        assert_eq!(rate_class(1.0), "ok");
        assert_eq!(rate_class(0.7), "warn");
        assert_eq!(rate_class(0.1), "bad");
    }

    #[test]
    fn a_label_is_escaped() {
        let svg = success_chart(&[], "<script>").into_string();
        assert!(svg.contains("&lt;script&gt;"), "{svg}");
    }
}
