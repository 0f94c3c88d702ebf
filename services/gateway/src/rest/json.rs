//! A JSON body extractor whose rejections are problem documents.

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::{DeserializeOwned, IgnoredAny};

use crate::problem::{Problem, ProblemKind};

/// Like [`axum::Json`], but stricter and with problem documents for what it refuses: invalid
/// JSON or UTF-8 is 400 `malformed-request`; valid JSON of the wrong shape (a wrong type, a
/// missing or unknown field, or anything but an object) is 422 `validation-failed` naming the
/// field; a missing or other content type is 415 `unsupported-media-type`; a body over the limit
/// is 413 `request-too-large`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read(request, state).await?;
        parse(&bytes).map(Json)
    }
}

/// A JSON object body kept as the client wrote it, for bodies the gateway passes on as JSON text
/// (such as a routing rule set): key order and formatting reach the service behind unchanged.
/// Refuses what [`Json`] refuses, except that any object is the right shape.
#[derive(Debug, Clone, Default)]
pub struct JsonObjectText(pub String);

impl<S: Send + Sync> FromRequest<S> for JsonObjectText {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read(request, state).await?;
        parse::<serde_json::Map<String, serde_json::Value>>(&bytes)?;
        // `parse` checked that it is UTF-8.
        Ok(JsonObjectText(String::from_utf8_lossy(&bytes).into_owned()))
    }
}

/// A JSON body that may be left out: no body, or an empty one, is `None`; anything else is read
/// like [`Json`] and refused for the same reasons.
#[derive(Debug, Clone, Copy, Default)]
pub struct OptionalJson<T>(pub Option<T>);

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let declared_json = is_json(request.headers());
        let bytes = read_bytes(request, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        if !declared_json {
            return Err(unsupported_media_type());
        }
        parse(&bytes).map(|value| OptionalJson(Some(value)))
    }
}

fn unsupported_media_type() -> Problem {
    Problem::new(
        ProblemKind::UnsupportedMediaType,
        "send the body with `Content-Type: application/json`",
    )
}

/// The body of a request that says it is JSON.
async fn read<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, Problem> {
    if !is_json(request.headers()) {
        return Err(unsupported_media_type());
    }
    read_bytes(request, state).await
}

async fn read_bytes<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, Problem> {
    Bytes::from_request(request, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(
                ProblemKind::RequestTooLarge,
                "the body is larger than the server accepts",
            )
        } else {
            Problem::new(
                ProblemKind::MalformedRequest,
                format!("the body could not be read: {}", rejection.body_text()),
            )
        }
    })
}

/// `application/json` or `application/<something>+json`, with any parameters.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    // Checked first and whole: the parser does not look inside strings it skips.
    if let Err(error) = std::str::from_utf8(bytes) {
        return Err(Problem::new(
            ProblemKind::MalformedRequest,
            format!("the body is not valid UTF-8: {error}"),
        ));
    }
    let parsed = axum::Json::<T>::from_bytes(bytes);
    let valid_json = || serde_json::from_slice::<IgnoredAny>(bytes).is_ok();
    // A derived struct also accepts an array of its fields in order; bodies are objects only.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') && valid_json() {
        return Err(Problem::new(
            ProblemKind::ValidationFailed,
            "the body must be a JSON object",
        ));
    }
    match parsed {
        Ok(axum::Json(value)) => Ok(value),
        Err(JsonRejection::JsonDataError(error)) => Err(Problem::new(
            ProblemKind::ValidationFailed,
            strip(
                &error.body_text(),
                "Failed to deserialize the JSON body into the target type: ",
            ),
        )),
        // The parser reports some type mismatches (such as a number where an enum's name is
        // expected) as syntax errors; only a body that is not JSON at all is malformed.
        Err(JsonRejection::JsonSyntaxError(error)) if valid_json() => Err(Problem::new(
            ProblemKind::ValidationFailed,
            strip(&error.body_text(), "Failed to parse the request body as JSON: "),
        )),
        Err(JsonRejection::JsonSyntaxError(error)) => Err(Problem::new(
            ProblemKind::MalformedRequest,
            format!(
                "the body is not valid JSON in UTF-8: {}",
                strip(&error.body_text(), "Failed to parse the request body as JSON: ")
            ),
        )),
        Err(other) => Err(Problem::new(ProblemKind::MalformedRequest, other.body_text())),
    }
}

fn strip(text: &str, prefix: &str) -> String {
    text.strip_prefix(prefix).unwrap_or(text).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        role: crate::rest::model::Role,
        text: Option<String>,
    }

    fn kind(bytes: &[u8]) -> (ProblemKind, String) {
        let problem = parse::<Body>(bytes).expect_err("refused");
        (problem.kind().expect("kind"), problem.detail.unwrap_or_default())
    }

    #[test]
    fn syntax_is_400_and_shape_is_422_naming_the_field() {
        assert_eq!(kind(b"{\"role\":").0, ProblemKind::MalformedRequest);
        assert_eq!(
            kind(b"{\"role\":\"bot\",\"text\":\"\xff\"}").0,
            ProblemKind::MalformedRequest
        );
        assert_eq!(kind(b"").0, ProblemKind::MalformedRequest);
        let (k, detail) = kind(br#"{"role":"bot","text":5}"#);
        assert_eq!(k, ProblemKind::ValidationFailed);
        assert!(detail.contains("text"), "{detail}");
        let (k, detail) = kind(br#"{"role":1}"#);
        assert_eq!(k, ProblemKind::ValidationFailed);
        assert!(detail.contains("role"), "{detail}");
        assert_eq!(kind(br#"["bot", "hi"]"#).0, ProblemKind::ValidationFailed);
        assert_eq!(kind(b"42").0, ProblemKind::ValidationFailed);
        assert!(parse::<Body>(br#" {"role":"bot"} "#).is_ok());
    }

    #[test]
    fn json_content_types() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
            is_json(&headers)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(with("application/merge-patch+json"));
        assert!(!with("text/plain"));
        assert!(!with("application/jsonx"));
        assert!(!is_json(&HeaderMap::new()));
    }
}
