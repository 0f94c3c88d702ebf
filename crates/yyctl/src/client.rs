//! Calls to the admin API and what can go wrong with them.

use std::fmt;
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A tenant, as the admin API describes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub created_at: String,
}

/// `GET /admin/v1/tenants`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantList {
    pub tenants: Vec<Tenant>,
}

/// A newly issued key, with the key itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatedKey {
    pub id: String,
    pub name: String,
    pub display_prefix: String,
    pub key: String,
    pub created_at: String,
}

/// An API key's metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub display_prefix: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// `GET /admin/v1/tenants/{id}/api-keys`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiKeyList {
    pub api_keys: Vec<ApiKey>,
}

/// The parts of an RFC 9457 problem document shown to the operator.
#[derive(Debug, Clone, Default, Deserialize)]
struct Problem {
    title: Option<String>,
    detail: Option<String>,
}

/// Why a command failed.
#[derive(Debug)]
pub enum Failure {
    /// No answer from the gateway: not listening, unresolvable, or too slow.
    Unreachable { url: String, reason: String },
    /// The gateway refused the request.
    Refused {
        status: StatusCode,
        title: Option<String>,
        detail: Option<String>,
    },
    /// The gateway answered with something that is not the admin API's answer.
    Unexpected(String),
    /// The result could not be printed.
    Output(String),
}

impl Failure {
    /// The process exit code: 69 (`EX_UNAVAILABLE`) when the gateway cannot be reached, else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Unreachable { .. } => 69,
            _ => 1,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Unreachable { url, reason } => write!(f, "cannot reach the gateway at {url}: {reason}"),
            Failure::Refused { status, title, detail } => {
                write!(f, "{}", status.as_u16())?;
                match (title, detail) {
                    (Some(title), Some(detail)) => write!(f, " {title}: {detail}"),
                    (Some(title), None) => write!(f, " {title}"),
                    (None, Some(detail)) => write!(f, " {detail}"),
                    (None, None) => write!(f, " {}", status.canonical_reason().unwrap_or("error")),
                }
            }
            Failure::Unexpected(what) => write!(f, "unexpected answer from the gateway: {what}"),
            Failure::Output(error) => write!(f, "cannot print the result: {error}"),
        }
    }
}

/// A client of one gateway's admin API.
#[derive(Debug)]
pub struct AdminClient {
    http: reqwest::Client,
    base: Url,
    token: String,
}

impl AdminClient {
    /// A client of the gateway at `base` (an http or https URL) using the admin `token`.
    pub fn new(base: Url, token: String) -> Result<Self, Failure> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("yyctl/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Failure::Unexpected(format!("cannot set up HTTP: {e}")))?;
        Ok(AdminClient { http, base, token })
    }

    pub async fn create_tenant(&self, name: &str) -> Result<Tenant, Failure> {
        let body = serde_json::json!({ "name": name });
        self.call(Method::POST, &["tenants"], Some(body)).await
    }

    pub async fn list_tenants(&self) -> Result<TenantList, Failure> {
        self.call(Method::GET, &["tenants"], None).await
    }

    pub async fn create_key(&self, tenant_id: &str, name: &str) -> Result<CreatedKey, Failure> {
        let body = serde_json::json!({ "name": name });
        self.call(Method::POST, &["tenants", tenant_id, "api-keys"], Some(body))
            .await
    }

    pub async fn list_keys(&self, tenant_id: &str) -> Result<ApiKeyList, Failure> {
        self.call(Method::GET, &["tenants", tenant_id, "api-keys"], None).await
    }

    pub async fn revoke_key(&self, tenant_id: &str, key_id: &str) -> Result<(), Failure> {
        self.send(Method::DELETE, &["tenants", tenant_id, "api-keys", key_id], None)
            .await
            .map(drop)
    }

    /// The URL of `/admin/v1/<segments…>` under the base URL, each segment percent-encoded so
    /// that an id can never change the path (`..`, `/`, `?`).
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["admin", "v1"]).extend(segments);
        }
        url
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<serde_json::Value>,
    ) -> Result<T, Failure> {
        let response = self.send(method, segments, body).await?;
        let bytes = response.bytes().await.map_err(|e| self.transport(e))?;
        serde_json::from_slice(&bytes).map_err(|e| Failure::Unexpected(e.to_string()))
    }

    async fn send(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<serde_json::Value>,
    ) -> Result<reqwest::Response, Failure> {
        let mut request = self.http.request(method, self.url(segments)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        // Anything but a problem document (a proxy's error page) still reports the status.
        let problem: Problem = response
            .bytes()
            .await
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Err(Failure::Refused {
            status,
            title: problem.title,
            detail: problem.detail,
        })
    }

    fn transport(&self, error: reqwest::Error) -> Failure {
        if error.is_connect() || error.is_timeout() || error.is_request() {
            Failure::Unreachable {
                url: self.base.to_string(),
                reason: describe(&error),
            }
        } else {
            Failure::Unexpected(describe(&error))
        }
    }
}

/// The error with its causes, which reqwest keeps in its source chain.
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_cannot_escape_the_admin_path() {
        let base = Url::parse("https://gateway.example/yy/").expect("url");
        let client = AdminClient::new(base, "token".into()).expect("client");
        assert_eq!(
            client.url(&["tenants", "../../x?y=1", "api-keys"]).as_str(),
            "https://gateway.example/yy/admin/v1/tenants/..%2F..%2Fx%3Fy=1/api-keys"
        );
        let client = AdminClient::new(Url::parse("http://127.0.0.1:8080").expect("url"), "t".into()).expect("client");
        assert_eq!(
            client.url(&["tenants"]).as_str(),
            "http://127.0.0.1:8080/admin/v1/tenants"
        );
    }

    #[test]
    fn refusals_show_the_problem_title_and_detail() {
        let failure = Failure::Refused {
            status: StatusCode::NOT_FOUND,
            title: Some("Not found".into()),
            detail: Some("no tenant ten_1".into()),
        };
        assert_eq!(failure.to_string(), "404 Not found: no tenant ten_1");
        assert_eq!(failure.exit_code(), 1);
        let failure = Failure::Refused {
            status: StatusCode::BAD_GATEWAY,
            title: None,
            detail: None,
        };
        assert_eq!(failure.to_string(), "502 Bad Gateway");
    }
}
