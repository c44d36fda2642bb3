//! Waiting on the asynchronous service: for a condition, with a deadline
//! ([`wait_until`]), for a value to stop changing ([`wait_until_steady`]),
//! or through a window in which something must NOT happen
//! ([`assert_throughout`]). A test never sleeps and then counts.

use std::future::Future;
use std::time::{Duration, Instant};

/// Generous bound for anything that has to travel through the delivery
/// pipeline (the machine is small and shared with other builds).
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// How often [`assert_throughout`] looks.
const WATCH_INTERVAL: Duration = Duration::from_millis(100);

/// What a [`wait_until`] probe may answer: `bool`, `Option<T>` or
/// `Result<T, E>` (the error text of the last probe ends up in the panic).
pub trait Probe {
    type Output;
    fn into_result(self) -> Result<Self::Output, String>;
}

impl Probe for bool {
    type Output = ();
    fn into_result(self) -> Result<(), String> {
        if self {
            Ok(())
        } else {
            Err("condition still false".to_string())
        }
    }
}

impl<T> Probe for Option<T> {
    type Output = T;
    fn into_result(self) -> Result<T, String> {
        self.ok_or_else(|| "condition still unmet".to_string())
    }
}

impl<T, E: std::fmt::Display> Probe for Result<T, E> {
    type Output = T;
    fn into_result(self) -> Result<T, String> {
        self.map_err(|e| e.to_string())
    }
}

/// Calls `probe` every 50 ms until it succeeds; panics after `timeout` with
/// the last probe's explanation.
pub async fn wait_until<F, Fut, P>(timeout: Duration, mut probe: F) -> P::Output
where
    F: FnMut() -> Fut,
    Fut: Future<Output = P>,
    P: Probe,
{
    let deadline = Instant::now() + timeout;
    loop {
        match probe().await.into_result() {
            Ok(value) => return value,
            Err(last) => {
                if Instant::now() >= deadline {
                    panic!("timed out after {timeout:?} waiting: {last}");
                }
            }
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Calls `probe` every 50 ms until it has answered the same value for
/// `steady_for`, and returns that value; panics when that has not happened
/// within `timeout`.
///
/// For what no event marks the end of (a storm dying down): the deadline
/// bounds when it must have ended, `timeout - steady_for` at the latest.
pub async fn wait_until_steady<F, Fut, T>(
    timeout: Duration,
    steady_for: Duration,
    mut probe: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
    T: PartialEq + std::fmt::Debug,
{
    let deadline = Instant::now() + timeout;
    let mut last = probe().await;
    let mut unchanged_since = Instant::now();
    while unchanged_since.elapsed() < steady_for {
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {last:?} to hold for {steady_for:?}");
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
        let now = probe().await;
        if now != last {
            last = now;
            unchanged_since = Instant::now();
        }
    }
    last
}

/// The negative counterpart of [`wait_until`]: looks with `probe` every
/// 100 ms for the whole `window`, the last look at or after its end, and
/// panics with `what` at the first look that fails.
///
/// That something does NOT happen (no further request, no new alert,
/// nothing deleted by the next sweeps) has no event to wait for: it can only
/// be shown over a window, whose length the scenario chooses to cover the
/// timers that would misbehave. Such a window is the one place a test
/// spends time on purpose, and this is its name.
pub async fn assert_throughout<F, Fut, P>(window: Duration, what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = P>,
    P: Probe,
{
    let started = Instant::now();
    loop {
        let window_over = started.elapsed() >= window;
        if let Err(last) = probe().await.into_result() {
            panic!(
                "{what}: broken {:?} into the {window:?} window: {last}",
                started.elapsed()
            );
        }
        if window_over {
            return;
        }
        let left = window.saturating_sub(started.elapsed());
        actix_rt::time::sleep(WATCH_INTERVAL.min(left)).await;
    }
}
