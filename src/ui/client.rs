//! The dashboard reads and acts through hookrelay's own JSON API, over
//! loopback, with the signed-in operator's key: every check of the API
//! (the key, the tenant it may see, each field) holds for the dashboard
//! without being written twice.

use serde_json::Value;
use std::time::Duration;

/// Why a call through the API did not give what the page needs.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// The key no longer works (revoked, or the session is gone).
    #[error("sign in again")]
    SignIn,
    /// Not found, or not this key's to see (the API answers both as 404).
    #[error("not found")]
    NotFound,
    /// The API refused the action, and said why.
    #[error("{0}")]
    Refused(String),
    #[error("hookrelay is unavailable: {0}")]
    Unavailable(String),
}

/// A request of the dashboard may wait this long for the API.
const TIMEOUT: Duration = Duration::from_secs(30);

pub struct ApiClient {
    client: reqwest::Client,
    base: String,
}

impl ApiClient {
    /// `base` is the API's own address, e.g. `http://127.0.0.1:8080`.
    pub fn new(base: String) -> Result<ApiClient, String> {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(ApiClient { client, base })
    }

    pub async fn get(&self, key: &str, path: &str) -> Result<Value, UiError> {
        self.call(reqwest::Method::GET, key, path, None).await
    }

    /// POSTs `body` (none: an empty body) to `path`.
    pub async fn post(&self, key: &str, path: &str, body: Option<Value>) -> Result<Value, UiError> {
        self.call(reqwest::Method::POST, key, path, body).await
    }

    async fn call(
        &self,
        method: reqwest::Method,
        key: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, UiError> {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| UiError::Unavailable(e.without_url().to_string()))?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        match status {
            200..=299 => Ok(body),
            401 => Err(UiError::SignIn),
            403 | 404 => Err(UiError::NotFound),
            503 => Err(UiError::Unavailable(detail(&body))),
            _ => Err(UiError::Refused(detail(&body))),
        }
    }
}

/// The problem's `detail`, or its `title`.
fn detail(problem: &Value) -> String {
    problem["detail"]
        .as_str()
        .or_else(|| problem["title"].as_str())
        .unwrap_or("the request was refused")
        .to_owned()
}
