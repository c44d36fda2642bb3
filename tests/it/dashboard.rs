//! The dashboard (issue 19), used as a person would: headless Chromium,
//! driven through chromedriver, against the real service and a real
//! receiver. Without chromedriver on the machine the tests say so and pass,
//! except under CI (`CI` set), where `.ci/run` installs it.
//!
//! `HOOKRELAY_SCREENSHOTS=<dir>` saves screenshots of the main pages there
//! (the README's come from such a run).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::{
    spawn_app, wait_until, Receiver, TenantEndpoint, TestApp, TestDb, ADMIN_KEY, DELIVERY_TIMEOUT,
};
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use serde_json::{json, Value};

backend_tests!(an_operator_watches_an_endpoint_fail_be_disabled_and_enables_it_with_replay);

#[actix_rt::test]
async fn forms_need_their_token_and_a_tenant_key_sees_only_its_tenant() {
    let app = spawn_app(TestDb::sqlite()).await;
    let receiver = Receiver::start();
    let acme = TenantEndpoint::create(&app, json!({"url": receiver.url()})).await;
    let (other, _) = app.create_tenant("other").await;

    // The sign-in form has its token too: a sign-in posted from elsewhere
    // (no token, no cookie) opens no session.
    let forged = no_redirects()
        .post(app.url("/ui/login"))
        .form(&[("key", ADMIN_KEY)])
        .send()
        .await
        .expect("a forged sign-in");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(forged.headers().get("set-cookie").is_none());

    // A tenant key signs in to its own tenant and no other.
    let tenant_session = sign_in(&app, &acme.key).await;
    let home = get(&app, &tenant_session, "/ui").await;
    assert_eq!(home.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&home), "/ui/tenants/acme");
    let own = get(&app, &tenant_session, "/ui/tenants/acme").await;
    assert_eq!(own.status(), StatusCode::OK);
    assert!(own.text().await.unwrap_or_default().contains(&acme.id));
    for page in [
        format!("/ui/tenants/{other}"),
        format!("/ui/tenants/{other}/alerts"),
    ] {
        let refused = get(&app, &tenant_session, &page).await;
        assert_eq!(refused.status(), StatusCode::NOT_FOUND, "{page}");
    }
    let tenants = get(&app, &tenant_session, "/ui/tenants").await;
    assert_eq!(
        location(&tenants),
        "/ui/tenants/acme",
        "the tenant list is the admin's"
    );

    // A form posted without its session's token, or with another, changes
    // nothing.
    let admin_session = sign_in(&app, ADMIN_KEY).await;
    let disable = format!("/ui/tenants/acme/endpoints/{}/disable", acme.id);
    for body in ["", "csrf=not-the-token"] {
        let refused = post(&app, &admin_session, &disable, body).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{body:?}");
        let page = refused.text().await.unwrap_or_default();
        assert!(page.contains("security token"), "{page}");
    }
    assert_eq!(acme.view(&app).await["status"], "active");
    // With the token the same form works.
    let page = get(
        &app,
        &admin_session,
        &format!("/ui/tenants/acme/endpoints/{}", acme.id),
    )
    .await;
    let token = csrf_of(&page.text().await.unwrap_or_default());
    let done = post(&app, &admin_session, &disable, &format!("csrf={token}")).await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(acme.view(&app).await["status"], "disabled");

    // Send test works while disabled; Rotate secret gives a new secret.
    let endpoint_actions = format!("/ui/tenants/acme/endpoints/{}", acme.id);
    let tested = post(
        &app,
        &admin_session,
        &format!("{endpoint_actions}/test"),
        &format!("csrf={token}"),
    )
    .await;
    assert_eq!(tested.status(), StatusCode::SEE_OTHER);
    receiver.wait_for_count(1, DELIVERY_TIMEOUT).await;
    let secret_path = format!("/v1/tenants/acme/endpoints/{}/secret", acme.id);
    let before = app.get_json(ADMIN_KEY, &secret_path).await["secret"].clone();
    let rotated = post(
        &app,
        &admin_session,
        &format!("{endpoint_actions}/rotate-secret"),
        &format!("csrf={token}"),
    )
    .await;
    assert_eq!(rotated.status(), StatusCode::SEE_OTHER);
    let after = app.get_json(ADMIN_KEY, &secret_path).await["secret"].clone();
    assert_ne!(before, after, "rotated");
    // Retry of a delivery of a disabled endpoint: the API's refusal, as a page.
    let event = acme
        .publish_numbered(&app, "evt_dashboard", 1)
        .await
        .remove(0);
    let delivery = app.single_delivery_id(&acme.key, "acme", &event).await;
    let retry = format!("/ui/tenants/acme/deliveries/{delivery}/retry");
    let refused = post(&app, &admin_session, &retry, &format!("csrf={token}")).await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    let page = refused.text().await.unwrap_or_default();
    assert!(
        page.contains("endpoint is disabled; enable it first"),
        "{page}"
    );

    // A revoked key ends its session at the next page.
    let keys = app.get_json(ADMIN_KEY, "/v1/tenants/acme/api-keys").await;
    for key in keys["data"].as_array().into_iter().flatten() {
        let id = key["id"].as_str().unwrap_or_default();
        app.delete(ADMIN_KEY, &format!("/v1/tenants/acme/api-keys/{id}"))
            .await;
    }
    let after = get(&app, &tenant_session, "/ui/tenants/acme").await;
    assert_eq!(location(&after), "/ui/login");

    // Signing out ends the session.
    let page = get(&app, &admin_session, "/ui/tenants").await;
    let token = csrf_of(&page.text().await.unwrap_or_default());
    let out = post(&app, &admin_session, "/ui/logout", &format!("csrf={token}")).await;
    assert_eq!(location(&out), "/ui/login");
    let after = get(&app, &admin_session, "/ui/tenants").await;
    assert_eq!(location(&after), "/ui/login");
}

/// A receiver's answer that would run script if it were markup.
const HOSTILE_ANSWER: &str =
    "<script>window.__xss = 1</script><img src=x onerror=\"window.__xss = 2\">";

async fn an_operator_watches_an_endpoint_fail_be_disabled_and_enables_it_with_replay(db: TestDb) {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let receiver = Receiver::start();
    let app = spawn_app(db).await;
    let ep = TenantEndpoint::create(
        &app,
        json!({
            "url": receiver.url(),
            "retry_schedule": [3600],
            "breaker_failures": 100,
            "alert_thresholds": [1],
            "disable_after_failures": 3,
            "disable_after_seconds": 0,
        }),
    )
    .await;
    ep.publish_numbered(&app, "evt_ok", 1).await;
    receiver.wait_for_count(1, DELIVERY_TIMEOUT).await;

    let client = &browser.client;
    let base = app.url("");
    client.goto(&format!("{base}/ui")).await.expect("open /ui");
    assert!(current_path(client).await.ends_with("/ui/login"));
    fill_and_submit(client, "hr_not_a_key_at_all").await;
    // A refused key's answer is held back a little (as through the API):
    // the page arrives after the click returns.
    shows(client, "This key is not valid").await;
    fill_and_submit(client, ADMIN_KEY).await;
    shows(client, "<h1>Tenants</h1>").await;
    assert!(current_path(client).await.ends_with("/ui/tenants"));
    assert!(client.source().await.expect("page").contains("acme"));
    browser.screenshot("tenants").await;

    // The receiver starts failing, with an answer that is markup.
    receiver.set_status(500);
    receiver.set_body(Some(HOSTILE_ANSWER.as_bytes()));
    ep.publish_numbered(&app, "evt_failing", 1).await;
    let tenant_page = format!("{base}/ui/tenants/acme");
    let row = format!("tr[data-endpoint='{}'].bad", ep.id);
    wait_for(
        client,
        &tenant_page,
        |page| page.contains("class=\"bad\""),
        &row,
    )
    .await;
    browser.screenshot("tenant-failing").await;

    ep.publish_numbered(&app, "evt_failing_more", 2).await;
    let endpoint_page = format!("{base}/ui/tenants/acme/endpoints/{}", ep.id);
    wait_for(
        client,
        &endpoint_page,
        |page| page.contains("Enable and replay held deliveries"),
        "the disabled endpoint's page",
    )
    .await;
    let status = client.find(Locator::Css("#status")).await.expect("status");
    assert!(status.text().await.expect("text").contains("disabled"));
    let held = client.find(Locator::Css("#held")).await.expect("held");
    assert_eq!(held.text().await.expect("text").trim(), "3");

    // The receiver's markup stays text: shown escaped, and nothing ran.
    let source = client.source().await.expect("page");
    assert!(
        source.contains("&lt;script&gt;window.__xss"),
        "escaped: {source}"
    );
    let injected = client
        .find_all(Locator::Css("pre.answer script, pre.answer img"))
        .await
        .expect("find");
    assert!(
        injected.is_empty(),
        "no element came from the receiver's answer"
    );
    let ran = client
        .execute("return typeof window.__xss;", vec![])
        .await
        .expect("execute");
    assert_eq!(
        ran,
        Value::from("undefined"),
        "the receiver's script never ran"
    );
    browser.screenshot("endpoint-disabled").await;

    // Enable with replay: the held deliveries are delivered.
    receiver.set_status(200);
    receiver.set_body(None);
    client
        .find(Locator::XPath(
            "//button[text()='Enable and replay held deliveries']",
        ))
        .await
        .expect("the enable button")
        .click()
        .await
        .expect("click enable");
    receiver.wait_for_count(1 + 3 + 3, DELIVERY_TIMEOUT).await;
    wait_until(DELIVERY_TIMEOUT, || async {
        ep.view(&app).await["status"] == "active"
    })
    .await;
    wait_for(
        client,
        &endpoint_page,
        |page| page.contains("Disable</button>"),
        "enabled",
    )
    .await;
    let status = client.find(Locator::Css("#status")).await.expect("status");
    assert!(status.text().await.expect("text").contains("active"));
    browser.screenshot("endpoint-enabled").await;

    let alerts = format!("{base}/ui/tenants/acme/alerts");
    client.goto(&alerts).await.expect("alerts");
    assert!(client
        .source()
        .await
        .expect("page")
        .contains("endpoint.disabled"));
    browser.screenshot("alerts").await;
    browser.close().await;
}

/// Loads `url` until `ready` holds for its source (the service works
/// behind the page), or panics naming `what`.
async fn wait_for(client: &Client, url: &str, ready: impl Fn(&str) -> bool, what: &str) {
    let deadline = std::time::Instant::now() + DELIVERY_TIMEOUT;
    loop {
        client.goto(url).await.expect("load the page");
        let source = client.source().await.expect("page");
        let found = client
            .find_all(Locator::Css(what))
            .await
            .map(|f| !f.is_empty());
        if ready(&source) && (found.unwrap_or(false) || !what.contains('[')) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never saw {what} on {url}:\n{source}"
        );
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the page in the browser contains `text`.
async fn shows(client: &Client, text: &str) {
    let deadline = std::time::Instant::now() + DELIVERY_TIMEOUT;
    loop {
        let source = client.source().await.expect("page");
        if source.contains(text) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never showed {text:?}:\n{source}"
        );
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn fill_and_submit(client: &Client, key: &str) {
    let input = client
        .find(Locator::Css("input[name=key]"))
        .await
        .expect("key field");
    input.clear().await.expect("clear");
    input.send_keys(key).await.expect("type the key");
    client
        .find(Locator::Css("form.login button"))
        .await
        .expect("sign-in button")
        .click()
        .await
        .expect("sign in");
}

async fn current_path(client: &Client) -> String {
    client.current_url().await.expect("url").path().to_owned()
}

/// Headless Chromium through a chromedriver of this test's own.
struct Browser {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// `None` (and a note) when chromedriver is not installed, outside CI.
    async fn start() -> Option<Browser> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let driver = match driver {
            Ok(driver) => driver,
            Err(error) if std::env::var_os("CI").is_none() => {
                eprintln!("skipped: chromedriver cannot start ({error}); apt-get install chromium chromium-driver");
                return None;
            }
            Err(error) => panic!("chromedriver must run under CI: {error}"),
        };
        let profile = tempfile::tempdir().expect("a profile directory");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({"args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000", format!("--user-data-dir={}", profile.path().display()),
            ]}),
        );
        let url = format!("http://127.0.0.1:{port}");
        let mut last_error = String::new();
        for _ in 0..50 {
            match ClientBuilder::native()
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    return Some(Browser {
                        client,
                        driver,
                        _profile: profile,
                    })
                }
                Err(error) => last_error = error.to_string(),
            }
            actix_rt::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no session from chromedriver: {last_error}");
    }

    async fn screenshot(&self, name: &str) {
        let Some(dir) = std::env::var_os("HOOKRELAY_SCREENSHOTS") else {
            return;
        };
        let png = self.client.screenshot().await.expect("screenshot");
        let path = std::path::Path::new(&dir).join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}

/// Signs in through the form, as a browser would (the form's page first,
/// for its token and cookie), and answers the session's cookie.
async fn sign_in(app: &TestApp, key: &str) -> String {
    let form = no_redirects()
        .get(app.url("/ui/login"))
        .send()
        .await
        .expect("the sign-in page");
    let login_cookie = set_cookie(&form);
    let token = csrf_of(&form.text().await.unwrap_or_default());
    let response = no_redirects()
        .post(app.url("/ui/login"))
        .header("cookie", login_cookie)
        .form(&[("key", key), ("csrf", &token)])
        .send()
        .await
        .expect("sign in");
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "signed in");
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|value| value.to_str().ok())
        .expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Max-Age="] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    cookie.split(';').next().unwrap_or_default().to_owned()
}

async fn get(app: &TestApp, cookie: &str, path: &str) -> reqwest::Response {
    let response = no_redirects()
        .get(app.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .expect("a page");
    let policy = response
        .headers()
        .get("content-security-policy")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    assert!(policy.contains("default-src 'none'"), "{path}: {policy}");
    response
}

async fn post(app: &TestApp, cookie: &str, path: &str, body: &str) -> reqwest::Response {
    no_redirects()
        .post(app.url(path))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_owned())
        .send()
        .await
        .expect("a form")
}

/// The `name=value` of the response's cookie.
fn set_cookie(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("set-cookie")
        .and_then(|value| value.to_str().ok())
        .and_then(|cookie| cookie.split(';').next())
        .unwrap_or_default()
        .to_owned()
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The CSRF token of the page's forms.
fn csrf_of(page: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = page.find(marker).expect("a form with its token") + marker.len();
    page[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}
