//! What an unauthenticated client or a careless setting can do to the
//! service (issue 20): bodies are never inflated, a configured admin key is
//! the only one, no secret is printed, weak admin keys are refused and
//! failed guesses are slowed. On the real binary, SQLite.

use crate::common::{refused_url, spawn_app, wait_until, Service, TestApp, TestDb, ADMIN_KEY};
use flate2::write::GzEncoder;
use flate2::Compression;
use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// What the bomb inflates to, and how many are sent at once: inflated,
/// they would take 2 GiB.
const BOMB_INFLATED_BYTES: usize = 64 << 20;
const BOMBS: usize = 32;
/// The service's peak RSS must stay under this (it idles near 20 MiB): a
/// tolerant bound, a tenth of what the bombs would cost inflated.
const PEAK_RSS_BOUND_KIB: u64 = 200 << 10;

fn random_key() -> String {
    format!("hrk_{}", uuid::Uuid::new_v4().simple())
}

fn gzip_of_zeros(inflated: usize) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..inflated / zeros.len() {
        encoder.write_all(&zeros).expect("compress");
    }
    encoder.finish().expect("finish the gzip stream")
}

/// The child's peak resident set (`VmHWM`), in KiB.
fn peak_rss_kib(service: &Service) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", service.child.id()))
        .expect("read the child's /proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmHWM line")
}

#[actix_rt::test]
async fn a_gzip_bomb_with_a_random_key_is_refused_unread_and_memory_stays_bounded() {
    let db = TestDb::sqlite();
    let service = Service::start_with(db.url(), "bombed", &[]).await;
    let app = TestApp::connect(&service.address, ADMIN_KEY);
    let bomb = gzip_of_zeros(BOMB_INFLATED_BYTES);
    assert!(bomb.len() < 256 << 10, "the bomb fits the payload limit");

    let sends = (0..BOMBS).map(|_| {
        app.client
            .post(app.url("/v1/tenants/acme/events"))
            .header(AUTHORIZATION, format!("Bearer {}", random_key()))
            .header(CONTENT_TYPE, "application/json")
            .header(CONTENT_ENCODING, "gzip")
            .body(bomb.clone())
            .send()
    });
    for answer in futures_util::future::join_all(sends).await {
        let answer = answer.expect("the service answers a bomb");
        assert_eq!(answer.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(
            answer
                .headers()
                .get("accept-encoding")
                .map(|v| v.as_bytes()),
            Some(&b"identity"[..])
        );
        let problem: serde_json::Value = answer.json().await.expect("a problem+json body");
        assert_eq!(problem["field"], "content-encoding", "{problem}");
    }

    // Without the header the same bytes are an opaque body under the
    // payload limit: the key decides (401), and nothing is inflated.
    let opaque = app
        .send(
            Method::POST,
            "/v1/tenants/acme/events",
            Some(&random_key()),
            &[],
            Some(bomb.clone()),
        )
        .await;
    opaque.assert_problem(401, "gzip bytes sent as they are, with a random key");

    let peak = peak_rss_kib(&service);
    eprintln!("peak RSS after {BOMBS} gzip bombs: {} MiB", peak >> 10);
    assert!(
        peak < PEAK_RSS_BOUND_KIB,
        "peak RSS {peak} KiB after {BOMBS} bombs"
    );
}

async fn answers_admin(service: &Service, key: &str) -> StatusCode {
    TestApp::connect(&service.address, key)
        .get(key, "/v1/tenants")
        .await
        .status
}

fn printed_key(service: &Service) -> Option<String> {
    service.printed.iter().find_map(|line| {
        line.strip_prefix("admin key: ")
            .map(|key| key.trim().to_owned())
    })
}

fn admin_key_rotate(database_url: &str, configured: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hookrelay"));
    command
        .args(["admin-key", "rotate"])
        .env("DATABASE_URL", database_url)
        .env_remove("HOOKRELAY_ADMIN_KEY")
        .stdin(Stdio::null());
    if let Some(key) = configured {
        command.env("HOOKRELAY_ADMIN_KEY", key);
    }
    command.output().expect("run hookrelay admin-key rotate")
}

fn rotated_key(output: &Output) -> String {
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("admin key: ").map(str::to_owned))
        .unwrap_or_else(|| panic!("no key printed: {output:?}"))
}

#[actix_rt::test]
async fn a_configured_admin_key_revokes_the_generated_one_which_is_printed_once() {
    let db = TestDb::sqlite();
    let mut first = Service::spawn(Service::command(db.url()), "first start").await;
    let generated = printed_key(&first).expect("the first start prints a generated key");
    assert_eq!(answers_admin(&first, &generated).await, StatusCode::OK);
    first.kill();

    let mut again = Service::spawn(Service::command(db.url()), "second start").await;
    assert_eq!(
        printed_key(&again),
        None,
        "printed once: {:?}",
        again.printed
    );
    assert_eq!(answers_admin(&again, &generated).await, StatusCode::OK);
    again.kill();

    let mut command = Service::command(db.url());
    command.env("HOOKRELAY_ADMIN_KEY", ADMIN_KEY);
    let mut configured = Service::spawn(command, "configured").await;
    assert_eq!(printed_key(&configured), None);
    assert_eq!(answers_admin(&configured, ADMIN_KEY).await, StatusCode::OK);
    assert_eq!(
        answers_admin(&configured, &generated).await,
        StatusCode::UNAUTHORIZED
    );
    configured.kill();

    // Unset again, the revoked key stays revoked: a new one is generated.
    let unset = Service::spawn(Service::command(db.url()), "unset again").await;
    let fresh = printed_key(&unset).expect("a new key once the configured one is gone");
    assert_ne!(fresh, generated);
    assert_eq!(
        answers_admin(&unset, &generated).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(answers_admin(&unset, &fresh).await, StatusCode::OK);
}

#[actix_rt::test]
async fn admin_key_rotate_prints_a_new_key_and_revokes_the_old() {
    let db = TestDb::sqlite();
    let mut first = Service::spawn(Service::command(db.url()), "first start").await;
    let generated = printed_key(&first).expect("a generated key");
    first.kill();

    let refused = admin_key_rotate(db.url(), Some(ADMIN_KEY));
    assert!(!refused.status.success(), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("HOOKRELAY_ADMIN_KEY is set"),
        "{refused:?}"
    );

    let rotated = rotated_key(&admin_key_rotate(db.url(), None));
    let again = rotated_key(&admin_key_rotate(db.url(), None));
    assert_ne!(rotated, again);
    let service = Service::spawn(Service::command(db.url()), "after rotation").await;
    assert_eq!(printed_key(&service), None);
    assert_eq!(answers_admin(&service, &again).await, StatusCode::OK);
    for revoked in [&generated, &rotated] {
        assert_eq!(
            answers_admin(&service, revoked).await,
            StatusCode::UNAUTHORIZED
        );
    }
    drop(service);

    // Beside a configured key, a key stored by a rotation while the service
    // runs is not an admin key.
    let mut command = Service::command(db.url());
    command.env("HOOKRELAY_ADMIN_KEY", ADMIN_KEY);
    let configured = Service::spawn(command, "configured").await;
    let stored_meanwhile = rotated_key(&admin_key_rotate(db.url(), None));
    assert_eq!(
        answers_admin(&configured, &stored_meanwhile).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(answers_admin(&configured, ADMIN_KEY).await, StatusCode::OK);
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hookrelay"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run the hookrelay binary")
}

#[test]
fn no_secret_is_shown_by_help_or_logged_with_a_refused_database_url() {
    const PASSWORD: &str = "pg-password-do-not-print";
    let secrets = [
        (
            "DATABASE_URL",
            format!("postgres://hook:{PASSWORD}@db.invalid:5432/hookrelay"),
        ),
        (
            "HOOKRELAY_ADMIN_KEY",
            "admin-key-do-not-print-0123456789".to_owned(),
        ),
        (
            "HOOKRELAY_SECRET_KEY",
            "c2VjcmV0LWtleS1kby1ub3QtcHJpbnQtMDEyMzQ1Ng==".to_owned(),
        ),
        (
            "HOOKRELAY_ALERT_SECRET",
            "whsec_ZG8tbm90LXByaW50LXRoaXMtc2VjcmV0".to_owned(),
        ),
        (
            "HOOKRELAY_ALERT_URL",
            "https://hooks.example.com/services/T0/B0/alert-token-do-not-print".to_owned(),
        ),
    ];
    let env: Vec<(&str, &str)> = secrets.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for command in [
        &["serve", "--help"][..],
        &["migrate", "--help"],
        &["admin-key", "rotate", "--help"],
    ] {
        let output = run(command, &env);
        assert!(output.status.success(), "{command:?}: {output:?}");
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(help.contains("DATABASE_URL"), "{command:?}: {help}");
        for (name, value) in &secrets {
            assert!(
                !help.contains(value.as_str()),
                "{command:?} shows {name}: {help}"
            );
        }
        assert!(!help.contains(PASSWORD), "{command:?}: {help}");
    }

    let refused = run(
        &["migrate"],
        &[(
            "DATABASE_URL",
            &format!("mysql://hook:{PASSWORD}@db.invalid/hookrelay"),
        )],
    );
    assert!(!refused.status.success(), "{refused:?}");
    let log = String::from_utf8_lossy(&refused.stderr);
    assert!(log.contains("unsupported DATABASE_URL"), "{log}");
    assert!(
        log.contains("mysql://hook:***@db.invalid/hookrelay"),
        "{log}"
    );
    assert!(!log.contains(PASSWORD), "{log}");
}

#[actix_rt::test]
async fn an_alert_log_line_names_the_endpoint_by_scheme_host_and_port_only() {
    let db = TestDb::sqlite();
    let service = Service::start_with(db.url(), "alerting", &[]).await;
    let app = TestApp::connect(&service.address, ADMIN_KEY);
    let (tenant, key) = app.create_tenant("acme").await;
    let origin = refused_url().trim_end_matches("/hook").to_owned();
    let url = format!("{origin}/services/T0/B0/path-token?token=query-token");
    app.create_endpoint(&key, &tenant, json!({"url": url}))
        .await;
    for _ in 0..3 {
        app.publish_event(&key, &tenant, "invoice.paid", json!({}))
            .await;
    }
    let line = wait_until(Duration::from_secs(60), || {
        let lines = service.log_lines();
        async move { lines.into_iter().find(|line| line.contains("alert: ")) }
    })
    .await;
    assert!(line.contains(&origin), "{line}");
    assert!(!line.contains("path-token"), "{line}");
    assert!(!line.contains("query-token"), "{line}");
}

#[test]
fn serve_refuses_an_admin_key_shorter_than_24_characters() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let database_url = format!("sqlite://{}", dir.path().join("hookrelay.db").display());
    let output = run(
        &["serve"],
        &[
            ("DATABASE_URL", &database_url),
            ("HOOKRELAY_LISTEN", "127.0.0.1:0"),
            ("HOOKRELAY_ADMIN_KEY", "admin-secret"),
        ],
    );
    assert!(!output.status.success(), "{output:?}");
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        log.contains("HOOKRELAY_ADMIN_KEY") && log.contains("at least 24 characters"),
        "{log}"
    );
    assert!(!log.contains("admin-secret"), "{log}");
}

#[actix_rt::test]
async fn repeated_failed_keys_from_one_address_are_answered_late_and_valid_keys_at_once() {
    let app = spawn_app(TestDb::sqlite()).await;
    // Ten failures are free; the next four wait 0.2, 0.4, 0.8 and 1.6 s.
    let guesses = (0..14).map(|_| {
        let key = random_key();
        let app = &app;
        async move { app.get(&key, "/v1/tenants").await }
    });
    for answer in futures_util::future::join_all(guesses).await {
        answer.assert_problem(401, "a guessed key");
    }

    let timed = |key: Option<String>| {
        let app = &app;
        async move {
            let started = Instant::now();
            let answer = app
                .send(Method::GET, "/v1/tenants", key.as_deref(), &[], None)
                .await;
            (answer.status, started.elapsed())
        }
    };
    let (status, valid) = timed(Some(ADMIN_KEY.to_owned())).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        valid < Duration::from_secs(1),
        "a valid key waited {valid:?}"
    );
    let (status, without) = timed(None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        without < Duration::from_secs(1),
        "no key waited {without:?}"
    );
    // The fifteenth failure waits 3.2 s.
    let (status, guessed) = timed(Some(random_key())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        guessed >= Duration::from_millis(3_000),
        "the 15th guess was answered after {guessed:?}"
    );
}
