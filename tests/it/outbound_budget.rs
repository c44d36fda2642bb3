//! Outbound work is bounded: the real binary, under a low file limit, with
//! one tenant's endpoints sending as much as they may to a receiver that
//! accepts and never answers, keeps its files, its API and another tenant's
//! deliveries.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{
    wait_until, Receiver, TestApp, TestDb, ADMIN_KEY, DELIVERY_TIMEOUT, LOOPBACK_TARGETS,
};
use reqwest::{Method, StatusCode};
use serde_json::json;

backend_tests!(a_hanging_receiver_under_a_low_file_limit_starves_neither_files_nor_other_tenants);

/// The child's file limit (soft and hard): its default budget is a quarter,
/// 64 attempts, and a tenant's share a quarter of that.
const FILE_LIMIT: u64 = 256;
const TENANT_SHARE: usize = 16;
const ENDPOINTS: usize = 4;
const PUBLISHES: usize = 260;

/// Accepts connections and keeps them open without reading or answering.
struct HangingReceiver {
    port: u16,
    held: Arc<Mutex<Vec<TcpStream>>>,
}

impl HangingReceiver {
    fn start() -> HangingReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the hanging receiver");
        let port = listener.local_addr().expect("its address").port();
        let held = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&held);
        // Ends with the test process; it only ever accepts.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                kept.lock().unwrap().push(stream);
            }
        });
        HangingReceiver { port, held }
    }

    fn url(&self, n: usize) -> String {
        format!("http://127.0.0.1:{}/hang/{n}", self.port)
    }

    fn connections(&self) -> usize {
        self.held.lock().unwrap().len()
    }
}

/// `hookrelay serve` with a lowered file limit, its log kept whole;
/// killed when dropped.
struct LimitedService {
    child: Child,
    address: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl LimitedService {
    fn start(database_url: &str) -> LimitedService {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hookrelay"));
        command
            .arg("serve")
            .env("DATABASE_URL", database_url)
            .env("HOOKRELAY_LISTEN", "127.0.0.1:0")
            .env("HOOKRELAY_ADMIN_KEY", ADMIN_KEY)
            .env("HOOKRELAY_ALLOW_TARGETS", LOOPBACK_TARGETS)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: setrlimit is async-signal-safe and touches only the child.
        unsafe {
            command.pre_exec(|| {
                let limit = libc::rlimit {
                    rlim_cur: FILE_LIMIT,
                    rlim_max: FILE_LIMIT,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let mut child = command.spawn().expect("spawn the hookrelay binary");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                lines.lock().unwrap().push(line);
            }
        });
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(address) = line.strip_prefix("hookrelay listening on ") {
                    let _ = address_tx.send(address.trim().to_owned());
                }
            }
        });
        let address = address_rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                panic!(
                    "hookrelay did not start; its log: {:?}",
                    log.lock().unwrap()
                )
            });
        LimitedService {
            child,
            address,
            log,
        }
    }

    fn log_lines_with(&self, needle: &str) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|line| line.contains(needle))
            .cloned()
            .collect()
    }
}

impl Drop for LimitedService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn a_hanging_receiver_under_a_low_file_limit_starves_neither_files_nor_other_tenants(
    db: TestDb,
) {
    let hanging = HangingReceiver::start();
    let healthy = Receiver::start();
    let service = LimitedService::start(db.url());
    let app = TestApp::connect(&service.address, ADMIN_KEY);
    // A thread of its own reads the child's standard error: the start-up
    // lines may still be on their way when the address is known.
    wait_until(DELIVERY_TIMEOUT, || async {
        let logged = service.log_lines_with(&format!("file limit (RLIMIT_NOFILE) {FILE_LIMIT}"));
        if logged.is_empty() {
            Err(format!(
                "the file limit and the budget are logged: {:?}",
                service.log.lock().unwrap()
            ))
        } else {
            Ok(())
        }
    })
    .await;

    let (noisy, noisy_key) = app.create_tenant("noisy").await;
    let mut noisy_endpoints = Vec::new();
    // The worst the API allows, which only the admin key may set (a tenant
    // key is held to 60 s): the budget must hold even then.
    for n in 0..ENDPOINTS {
        let endpoint = app
            .create_endpoint(
                ADMIN_KEY,
                &noisy,
                json!({"url": hanging.url(n), "max_in_flight": 256, "timeout_seconds": 300}),
            )
            .await;
        noisy_endpoints.push(endpoint["id"].as_str().expect("endpoint id").to_owned());
    }
    let (quiet, quiet_key) = app.create_tenant("quiet").await;
    app.create_endpoint(&quiet_key, &quiet, json!({"url": healthy.url()}))
        .await;

    for n in 0..PUBLISHES {
        app.publish_event(&noisy_key, &noisy, "flood.tick", json!({"n": n}))
            .await;
    }
    // The noisy tenant's share of attempts is open and waits on the
    // receiver; the rest of its deliveries wait for slots.
    wait_until(DELIVERY_TIMEOUT, || async {
        let open = hanging.connections();
        if open >= TENANT_SHARE {
            Ok(())
        } else {
            Err(format!("{open} connections to the hanging receiver"))
        }
    })
    .await;

    let event_id = app
        .publish_event(&quiet_key, &quiet, "order.paid", json!({"order": 1}))
        .await;
    let delivered = healthy.wait_for_count(1, DELIVERY_TIMEOUT).await;
    assert_eq!(
        delivered[0].header("webhook-id"),
        Some(event_id.as_str()),
        "the other tenant's delivery arrives"
    );

    let health = app.send(Method::GET, "/healthz", None, &[], None).await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.body);
    let mut waiting = 0;
    for endpoint in &noisy_endpoints {
        let view = app.endpoint_health(&noisy_key, &noisy, endpoint).await;
        waiting += view["queue"]["waiting_for_slot"].as_u64().unwrap_or(0);
        assert_eq!(
            view["consecutive_failures"],
            json!(0),
            "waiting is not failing: {view}"
        );
        assert_eq!(view["circuit"]["state"], json!("closed"), "{view}");
    }
    assert!(waiting > 0, "attempts wait for slots, visibly");
    let open = hanging.connections();
    assert!(
        open <= TENANT_SHARE,
        "the noisy tenant holds at most its share of sockets, it holds {open}"
    );
    let exhausted = service.log_lines_with("Too many open files");
    assert!(
        exhausted.is_empty(),
        "{} lines about exhausted files, the first: {:?}",
        exhausted.len(),
        exhausted.first()
    );
}
