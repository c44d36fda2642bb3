//! The real service as a child process (`hookrelay serve`, found next to
//! the bench binary), its resident memory, and restarting it.

use crate::client::Bench;
use crate::ADMIN_KEY;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How `hookrelay serve` is started: the same binary, database, port and
/// log file every time, so that a restart finds what the last run left.
pub struct ServiceCommand {
    binary: PathBuf,
    database_url: String,
    pub port: u16,
    log: PathBuf,
    /// Settings besides the defaults.
    env: Vec<(String, String)>,
}

/// After SIGTERM, how long the service may take to exit before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(15);
/// How long to wait for a started service to answer before giving up.
const START_LIMIT: Duration = Duration::from_secs(300);

impl ServiceCommand {
    /// `explicit`, or `hookrelay` in the directory of the running bench
    /// (`cargo build --release` builds both into `target/release`).
    pub fn new(
        explicit: Option<&Path>,
        database_url: &str,
        port: u16,
        log: PathBuf,
    ) -> Result<ServiceCommand, String> {
        let binary = match explicit {
            Some(path) => path.to_owned(),
            None => std::env::current_exe()
                .map_err(|e| format!("cannot find the bench binary: {e}"))?
                .parent()
                .ok_or("the bench binary has no directory")?
                .join("hookrelay"),
        };
        if !binary.is_file() {
            return Err(format!(
                "no service binary at {}: build it with `cargo build --release` \
                 (which builds hookrelay and hookrelay-bench side by side) or pass --service-binary",
                binary.display()
            ));
        }
        Ok(ServiceCommand {
            binary,
            database_url: database_url.to_owned(),
            port,
            log,
            env: Vec::new(),
        })
    }

    /// The same command with `name=value` set as well.
    pub fn with_env(mut self, name: &str, value: &str) -> ServiceCommand {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Starts `hookrelay serve` on loopback; its stdout and stderr are
    /// appended to the log file. Every other setting is the default.
    pub fn spawn(&self) -> Result<ServiceProcess, String> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("cannot open {}: {e}", self.log.display()))?;
        let stderr = log.try_clone().map_err(|e| e.to_string())?;
        let spawned_at = Instant::now();
        let child = Command::new(&self.binary)
            .arg("serve")
            .env("DATABASE_URL", &self.database_url)
            .env("HOOKRELAY_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("HOOKRELAY_ADMIN_KEY", ADMIN_KEY)
            .env("HOOKRELAY_ALLOW_TARGETS", crate::LOOPBACK_TARGETS)
            .envs(self.env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(stderr))
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.binary.display()))?;
        Ok(ServiceProcess { child, spawned_at })
    }

    /// Starts the service and waits until `bench` sees it serving (see
    /// [`Bench::is_serving`]); returns it with the time that took.
    pub async fn start(
        &self,
        bench: &Bench,
        probe_tenant: Option<&str>,
    ) -> Result<(ServiceProcess, Duration), String> {
        let mut process = self.spawn()?;
        let ready = process
            .wait_until_serving(bench, probe_tenant, self.log())
            .await?;
        Ok((process, ready))
    }
}

/// A running `hookrelay serve`; killed if dropped while still running.
pub struct ServiceProcess {
    child: Child,
    spawned_at: Instant,
}

/// How a stop went.
pub struct Stopped {
    pub elapsed: Duration,
    /// `SIGTERM`, or `SIGKILL` when the grace ran out.
    pub signal: &'static str,
    pub status: Option<ExitStatus>,
}

impl ServiceProcess {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn spawned_at(&self) -> Instant {
        self.spawned_at
    }

    /// Polls until the API answers (see [`Bench::is_serving`]); fails if the
    /// process exits first or takes longer than [`START_LIMIT`].
    async fn wait_until_serving(
        &mut self,
        bench: &Bench,
        probe_tenant: Option<&str>,
        log: &Path,
    ) -> Result<Duration, String> {
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!(
                    "the service exited ({status}) before serving; see {}",
                    log.display()
                ));
            }
            if bench.is_serving(probe_tenant).await {
                return Ok(self.spawned_at.elapsed());
            }
            if self.spawned_at.elapsed() > START_LIMIT {
                return Err(format!(
                    "the service did not serve within {} s; see {}",
                    START_LIMIT.as_secs(),
                    log.display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL, as a crash: nothing is drained or given back.
    pub fn kill(&mut self) -> Result<(), String> {
        self.child.kill().map_err(|e| e.to_string())?;
        self.child.wait().map(drop).map_err(|e| e.to_string())
    }

    /// SIGTERM (the service drains in-flight attempts and exits), then
    /// SIGKILL if it is still running after `grace`.
    pub async fn stop(&mut self, grace: Duration) -> Result<Stopped, String> {
        let started = Instant::now();
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .map_err(|e| format!("cannot run kill: {e}"))?;
        if !sent.success() {
            return Err(format!("kill -TERM {} failed: {sent}", self.pid()));
        }
        while started.elapsed() < grace {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Ok(Stopped {
                    elapsed: started.elapsed(),
                    signal: "SIGTERM",
                    status: Some(status),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.child.kill().map_err(|e| e.to_string())?;
        let status = self.child.wait().map_err(|e| e.to_string())?;
        Ok(Stopped {
            elapsed: started.elapsed(),
            signal: "SIGKILL",
            status: Some(status),
        })
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = self
            .status
            .map_or_else(|| "unknown".to_owned(), |s| s.to_string());
        write!(
            f,
            "stopped in {:.2} s ({}, {status})",
            self.elapsed.as_secs_f64(),
            self.signal
        )
    }
}

/// Samples one process's resident set size (`VmRSS`) on its own thread
/// and keeps the peak since the last [`RssMonitor::take_peak`].
pub struct RssMonitor {
    pid: Arc<AtomicU32>,
    peak_kib: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl RssMonitor {
    pub fn start(interval: Duration) -> RssMonitor {
        let monitor = RssMonitor {
            pid: Arc::new(AtomicU32::new(0)),
            peak_kib: Arc::new(AtomicU64::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (pid, peak, stop) = (
            Arc::clone(&monitor.pid),
            Arc::clone(&monitor.peak_kib),
            Arc::clone(&monitor.stop),
        );
        crate::spawn_named("bench-rss", move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(kib) = rss_kib(pid.load(Ordering::Relaxed)) {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                std::thread::sleep(interval);
            }
            Ok(())
        });
        monitor
    }

    /// Samples `process` from now on, with a fresh peak.
    pub fn watch(&self, process: &ServiceProcess) {
        self.pid.store(process.pid(), Ordering::Relaxed);
        self.take_peak();
    }

    /// The resident set size now, in MiB.
    pub fn current_mib(&self) -> Option<f64> {
        let kib = rss_kib(self.pid.load(Ordering::Relaxed))?;
        self.peak_kib.fetch_max(kib, Ordering::Relaxed);
        Some(mib(kib))
    }

    /// The peak since the last call (or `watch`), in MiB; starts a new one.
    pub fn take_peak(&self) -> f64 {
        if let Some(kib) = rss_kib(self.pid.load(Ordering::Relaxed)) {
            self.peak_kib.fetch_max(kib, Ordering::Relaxed);
        }
        mib(self.peak_kib.swap(0, Ordering::Relaxed))
    }
}

impl Drop for RssMonitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// `VmRSS` of `/proc/<pid>/status` in KiB; `None` once the process is gone.
fn rss_kib(pid: u32) -> Option<u64> {
    if pid == 0 {
        return None;
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// What a restart measured.
pub struct Restart {
    pub stopped: Stopped,
    /// From starting the new process until the API answered.
    pub serving_after: Duration,
    /// The peak over the first `window` after the new start.
    pub peak_mib: f64,
    pub window: Duration,
}

/// Stops `old`, starts the service again on the same database and port,
/// waits until it serves, and samples its memory until `window` after its
/// start (longer if serving took longer).
pub async fn restart(
    command: &ServiceCommand,
    old: &mut ServiceProcess,
    bench: &Bench,
    rss: &RssMonitor,
    probe_tenant: Option<&str>,
    window: Duration,
) -> Result<(ServiceProcess, Restart), String> {
    let stopped = old.stop(STOP_GRACE).await?;
    let mut process = command.spawn()?;
    rss.watch(&process);
    let serving_after = process
        .wait_until_serving(bench, probe_tenant, command.log())
        .await?;
    let until = process.spawned_at() + window;
    tokio::time::sleep_until(until.into()).await;
    let peak_mib = rss.take_peak();
    Ok((
        process,
        Restart {
            stopped,
            serving_after,
            peak_mib,
            window,
        },
    ))
}

/// A target as "met" or "missed".
pub fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "missed"
    }
}
