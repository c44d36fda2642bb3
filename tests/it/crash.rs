//! Crash safety of the real binary: an event that was answered with 2xx is
//! delivered even when the process is killed with SIGKILL right after.

use std::cell::{Cell, RefCell};
use std::collections::{HashSet, VecDeque};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{to_bytes, wait_until, Receiver, TestApp, TestDb, ADMIN_KEY, LOOPBACK_TARGETS};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde_json::json;

backend_tests!(accepted_events_survive_a_kill_and_are_delivered_after_restart);

const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
const WORKERS: usize = 4;
const EVENTS_PER_WORKER: usize = 75;

/// A `hookrelay serve` child process, killed (SIGKILL) when dropped. When
/// the test panics, the tail of its stderr is printed.
pub(crate) struct Service {
    label: &'static str,
    pub(crate) child: Child,
    pub(crate) address: String,
    /// What it printed on stdout before it listened.
    pub(crate) printed: Vec<String>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
}

impl Service {
    async fn start(database_url: &str, label: &'static str) -> Service {
        Service::start_with(database_url, label, &[]).await
    }

    /// Like [`Service::start`], with extra environment variables (settings).
    pub(crate) async fn start_with(
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
    pub(crate) fn command(database_url: &str) -> Command {
        let rust_log = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_string());
        let mut command = Command::new(env!("CARGO_BIN_EXE_hookrelay"));
        command
            .arg("serve")
            .env_remove("HOOKRELAY_ADMIN_KEY")
            .env("DATABASE_URL", database_url)
            .env("HOOKRELAY_LISTEN", "127.0.0.1:0")
            .env("HOOKRELAY_ALLOW_TARGETS", LOOPBACK_TARGETS)
            .env("RUST_LOG", rust_log);
        command
    }

    /// Starts `command` and waits for its `listening` line; the lines it
    /// printed before are kept in `printed`.
    pub(crate) async fn spawn(mut command: Command, label: &'static str) -> Service {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the hookrelay binary");
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
    pub(crate) fn log_lines(&self) -> Vec<String> {
        self.stderr_tail.lock().unwrap().iter().cloned().collect()
    }

    /// SIGKILL, then reap.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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

async fn accepted_events_survive_a_kill_and_are_delivered_after_restart(db: TestDb) {
    let receiver = Receiver::start();
    receiver.set_delay(Some(Duration::from_millis(30)));

    let mut first = Service::start(db.url(), "first").await;
    let app = TestApp::connect(&first.address, ADMIN_KEY);
    let (tenant, key) = app.create_tenant("acme").await;
    app.create_endpoint(
        &key,
        &tenant,
        json!({
            "url": receiver.url(),
            "timeout_seconds": 10,
            // Slow consumer and few connections: deliveries pile up, so
            // plenty are still pending when the process dies.
            "max_in_flight": 2,
            "retry_schedule": [1, 1, 2, 2, 5, 5, 5, 5],
        }),
    )
    .await;

    // A burst from a few concurrent publishers; the server is killed once
    // about half of it has been accepted.
    let accepted: Rc<RefCell<Vec<(String, serde_json::Value)>>> = Rc::default();
    let refused: Rc<RefCell<Vec<String>>> = Rc::default();
    let finished = Rc::new(Cell::new(0usize));
    let events_url = app.url(&format!("/v1/tenants/{tenant}/events"));
    let mut publishers = Vec::new();
    for worker in 0..WORKERS {
        let (client, url, key) = (app.client.clone(), events_url.clone(), key.clone());
        let (accepted, refused, finished) = (accepted.clone(), refused.clone(), finished.clone());
        publishers.push(actix_rt::spawn(async move {
            for n in 0..EVENTS_PER_WORKER {
                let id = format!("evt_crash_{worker}_{n}");
                let body =
                    json!({"id": id, "type": "crash.test", "payload": {"worker": worker, "n": n}});
                let sent = client
                    .post(&url)
                    .header(AUTHORIZATION, format!("Bearer {key}"))
                    .header(CONTENT_TYPE, "application/json")
                    .body(to_bytes(&body))
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status().is_success() => {
                        accepted.borrow_mut().push((id, body))
                    }
                    Ok(response) => refused
                        .borrow_mut()
                        .push(format!("{id}: {}", response.status())),
                    // The server is gone.
                    Err(_) => break,
                }
            }
            finished.set(finished.get() + 1);
        }));
    }

    let half = WORKERS * EVENTS_PER_WORKER / 2;
    wait_until(Duration::from_secs(180), || async {
        let count = accepted.borrow().len();
        if count >= half || finished.get() == WORKERS {
            Ok(())
        } else {
            Err(format!("{half} accepted events, have {count}"))
        }
    })
    .await;
    first.kill();
    let accepted_at_kill = accepted.borrow().len();
    for publisher in publishers {
        actix_rt::time::timeout(Duration::from_secs(60), publisher)
            .await
            .expect("publishers stop once the server is gone")
            .expect("publisher task");
    }
    let accepted: Vec<(String, serde_json::Value)> = accepted.borrow().clone();
    assert!(
        !accepted.is_empty(),
        "nothing was accepted before the kill; refused: {:?}",
        refused.borrow()
    );
    eprintln!(
        "{}: {} events accepted ({accepted_at_kill} when killed), {} refused, {} received before restart",
        db.backend(),
        accepted.len(),
        refused.borrow().len(),
        receiver.count()
    );

    // Same database, new process and port; the receiver keeps its URL.
    let second = Service::start(db.url(), "restarted").await;
    let app = TestApp::connect(&second.address, ADMIN_KEY);
    wait_until(Duration::from_secs(60), || async {
        let received: HashSet<String> = receiver
            .requests()
            .iter()
            .filter_map(|r| r.header("webhook-id").map(str::to_string))
            .collect();
        let missing: Vec<&String> = accepted
            .iter()
            .map(|(id, _)| id)
            .filter(|id| !received.contains(*id))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "all {} accepted events delivered; {} missing, e.g. {:?}",
                accepted.len(),
                missing.len(),
                &missing[..missing.len().min(5)]
            ))
        }
    })
    .await;

    // Every accepted event is stored for good: publishing it again is a
    // repeat (200), not a new event.
    for (id, body) in &accepted {
        let again = app.publish(&key, &tenant, body).await;
        assert_eq!(
            again.status,
            reqwest::StatusCode::OK,
            "republishing accepted {id} after the crash: {}",
            again.body
        );
    }
    drop(second);
}
