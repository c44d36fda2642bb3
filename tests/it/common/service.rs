//! The real binary: [`Service`], `hookrelay serve` as a child process that
//! can be killed or sent SIGTERM, and [`try_publish`], a publish as a
//! client racing such a process's end makes it.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::StatusCode;
use serde_json::Value;

use super::app::{instance_id_for, ADMIN_KEY, LOOPBACK_TARGETS};
use super::values::to_bytes;
use super::waiting::wait_until;

/// How long the binary may take to say it listens.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// A `hookrelay serve` child process, killed (SIGKILL) when dropped. When
/// the test panics, the tail of its stderr is printed.
pub struct Service {
    label: &'static str,
    pub child: Child,
    pub address: String,
    /// What it printed on stdout before it listened.
    pub printed: Vec<String>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
}

impl Service {
    pub async fn start(database_url: &str, label: &'static str) -> Service {
        Service::start_with(database_url, label, &[]).await
    }

    /// Like [`Service::start`], with extra environment variables (settings).
    pub async fn start_with(
        database_url: &str,
        label: &'static str,
        env: &[(&str, &str)],
    ) -> Service {
        let mut command = Service::command(database_url);
        command
            .env("HOOKRELAY_ADMIN_KEY", ADMIN_KEY)
            .envs(env.iter().copied());
        Service::spawn(command, label).await
    }

    /// `hookrelay serve` on `database_url`, loopback only, without an admin
    /// key: the caller adds what it needs.
    pub fn command(database_url: &str) -> Command {
        let rust_log = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_string());
        let mut command = Command::new(env!("CARGO_BIN_EXE_hookrelay"));
        command
            .arg("serve")
            .env_remove("HOOKRELAY_ADMIN_KEY")
            .env("DATABASE_URL", database_url)
            .env("HOOKRELAY_INSTANCE_ID", instance_id_for(database_url))
            .env("HOOKRELAY_LISTEN", "127.0.0.1:0")
            .env("HOOKRELAY_ALLOW_TARGETS", LOOPBACK_TARGETS)
            .env("RUST_LOG", rust_log);
        command
    }

    /// Starts `command` and waits for its `listening` line; the lines it
    /// printed before are kept in `printed`.
    pub async fn spawn(mut command: Command, label: &'static str) -> Service {
        let mut child = spawn_piped(&mut command);
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let mut service = Service {
            label,
            child,
            address: String::new(),
            printed: Vec::new(),
            stderr_tail: Arc::new(Mutex::new(VecDeque::new())),
        };

        // Readers keep draining both pipes for the life of the process.
        let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // Once nobody listens any more this just keeps draining.
                let _ = lines_tx.send(line);
            }
        });
        let tail = Arc::clone(&service.stderr_tail);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut tail = tail.lock().unwrap();
                if tail.len() == 200 {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        });

        let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
        let mut seen = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, lines.recv()).await {
                Ok(Some(line)) => {
                    if let Some(address) = line.strip_prefix("hookrelay listening on ") {
                        assert!(
                            address.starts_with("http://127.0.0.1:"),
                            "unexpected listen address in {line:?}"
                        );
                        service.address = address.trim().to_string();
                        service.printed = seen;
                        return service;
                    }
                    seen.push(line);
                }
                Ok(None) => panic!(
                    "{label}: hookrelay exited before listening ({:?}); stdout was {seen:?}",
                    service.child.try_wait()
                ),
                Err(_) => panic!(
                    "{label}: no `hookrelay listening on` line within {STARTUP_TIMEOUT:?}; stdout was {seen:?}"
                ),
            }
        }
    }

    /// The last lines (at most 200) it wrote on stderr: its log.
    pub fn log_lines(&self) -> Vec<String> {
        self.stderr_tail.lock().unwrap().iter().cloned().collect()
    }

    /// Sends SIGTERM and waits up to `within` for the process to exit;
    /// returns how it exited and how long that took.
    pub async fn terminate(&mut self, within: Duration) -> (ExitStatus, Duration) {
        let signalled = Instant::now();
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM");
        let exit = wait_until(within, || {
            let exited = self.child.try_wait().ok().flatten();
            async move { exited }
        })
        .await;
        (exit, signalled.elapsed())
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `command` (the hookrelay binary) with no stdin and its stdout
/// and stderr piped to the test.
pub fn spawn_piped(command: &mut Command) -> Child {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the hookrelay binary")
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let tail = self.stderr_tail.lock().unwrap();
            eprintln!(
                "---- last {} stderr lines of the {} hookrelay ----",
                tail.len(),
                self.label
            );
            for line in tail.iter() {
                eprintln!("{line}");
            }
        }
    }
}

/// Publishes `body` to `events_url` (`…/v1/tenants/{t}/events`) with `key`:
/// the status of the answer, or `Err` when no answer came (the server is
/// gone).
pub async fn try_publish(
    client: &reqwest::Client,
    events_url: &str,
    key: &str,
    body: &Value,
) -> Result<StatusCode, reqwest::Error> {
    let response = client
        .post(events_url)
        .header(AUTHORIZATION, format!("Bearer {key}"))
        .header(CONTENT_TYPE, "application/json")
        .body(to_bytes(body))
        .send()
        .await?;
    Ok(response.status())
}
