//! The admin API, `/admin/v1`: tenants and API keys, for operators holding the admin token.

use axum::Json;

use crate::rest::Json as RequestJson;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get};
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::{Iam, bearer, directory, request_id, unauthorized};
use crate::AppState;
use crate::problem::{Problem, ProblemKind};

/// The longest tenant or key name, in characters.
const MAX_NAME_CHARS: usize = 200;

/// The admin routes; with `enabled` false (no admin token configured) every path under `/admin`
/// answers 404, so that a gateway without one does not even reveal the API.
pub(super) fn routes(iam: &Iam, enabled: bool) -> axum::Router<AppState> {
    if !enabled {
        return axum::Router::new()
            .route("/admin", any(absent))
            .route("/admin/{*rest}", any(absent));
    }
    axum::Router::new()
        .route("/admin/v1/tenants", get(list_tenants).post(create_tenant))
        .route("/admin/v1/tenants/{tenant_id}", get(get_tenant))
        .route("/admin/v1/tenants/{tenant_id}/api-keys", get(list_keys).post(issue_key))
        .route("/admin/v1/tenants/{tenant_id}/api-keys/{key_id}", delete(revoke_key))
        // A route layer runs before the handlers' extractors: an unauthenticated request learns
        // nothing, not even whether its body would have been valid.
        .route_layer(middleware::from_fn_with_state(iam.clone(), require_admin))
}

async fn absent() -> Problem {
    Problem::new(ProblemKind::NotFound, "")
}

async fn require_admin(State(iam): State<Iam>, request: Request, next: Next) -> Response {
    match bearer(request.headers()) {
        Some(token) if iam.is_admin(token) => next.run(request).await,
        Some(_) => unauthorized("the admin token is not valid"),
        None => unauthorized("the admin API requires `Authorization: Bearer <admin token>`"),
    }
}

/// The body of `POST /admin/v1/tenants`.
#[derive(Debug, Deserialize, ToSchema)]
struct CreateTenant {
    /// The tenant's display name: 1 to 200 characters, not only spaces, no control characters.
    /// Leading and trailing spaces are removed.
    #[schema(min_length = 1, max_length = 200, example = "Acme Support")]
    name: String,
}

/// A tenant.
#[derive(Debug, Serialize, ToSchema)]
struct Tenant {
    /// `ten_` and 32 hex digits.
    #[schema(example = "ten_0198f3c2a1b47d1e9c2f5a6b7c8d9e0f")]
    id: String,
    /// The display name.
    name: String,
    /// When it was created (RFC 3339, UTC).
    #[schema(format = DateTime)]
    created_at: String,
}

/// Every tenant, oldest first.
#[derive(Debug, Serialize, ToSchema)]
struct TenantList {
    tenants: Vec<Tenant>,
}

/// The body of `POST /admin/v1/tenants/{tenant_id}/api-keys`.
#[derive(Debug, Deserialize, ToSchema)]
struct CreateApiKey {
    /// What the key is for, such as "production backend": 1 to 200 characters, not only spaces,
    /// no control characters. Leading and trailing spaces are removed.
    #[schema(min_length = 1, max_length = 200, example = "production backend")]
    name: String,
}

/// A newly issued API key. `key` appears in this response only: it is not stored and cannot be
/// shown again.
#[derive(Debug, Serialize, ToSchema)]
struct CreatedApiKey {
    /// `key_` and 32 hex digits.
    #[schema(example = "key_0198f3c2b0e27a4c8d1e2f3a4b5c6d7e")]
    id: String,
    /// What the key is for.
    name: String,
    /// The key's first 10 characters, shown in listings.
    #[schema(example = "yy_4fQ9xZk")]
    display_prefix: String,
    /// The key: `yy_` and 40 letters and digits. Send it as `Authorization: Bearer <key>`.
    key: String,
    /// When it was issued (RFC 3339, UTC).
    #[schema(format = DateTime)]
    created_at: String,
}

/// An API key's metadata.
#[derive(Debug, Serialize, ToSchema)]
struct ApiKey {
    /// `key_` and 32 hex digits.
    id: String,
    /// What the key is for.
    name: String,
    /// The key's first 10 characters.
    display_prefix: String,
    /// When it was issued (RFC 3339, UTC).
    #[schema(format = DateTime)]
    created_at: String,
    /// When it was revoked (RFC 3339, UTC); null while it is valid.
    #[schema(format = DateTime)]
    revoked_at: Option<String>,
}

/// A tenant's API keys, revoked ones included, oldest first.
#[derive(Debug, Serialize, ToSchema)]
struct ApiKeyList {
    api_keys: Vec<ApiKey>,
}

impl From<&directory::Tenant> for Tenant {
    fn from(tenant: &directory::Tenant) -> Self {
        Tenant {
            id: tenant.id.clone(),
            name: tenant.name.clone(),
            created_at: tenant.created_at.clone(),
        }
    }
}

impl From<&directory::ApiKey> for ApiKey {
    fn from(key: &directory::ApiKey) -> Self {
        ApiKey {
            id: key.id.clone(),
            name: key.name.clone(),
            display_prefix: key.display_prefix.clone(),
            created_at: key.created_at.clone(),
            revoked_at: key.revoked_at.clone(),
        }
    }
}

/// Creates a tenant.
#[utoipa::path(
    post,
    path = "/admin/v1/tenants",
    tag = "admin",
    security(("admin_token" = [])),
    request_body = CreateTenant,
    responses(
        (status = 201, description = "Created", body = Tenant,
            headers(("location" = String, description = "The tenant's URL"))),
        (status = 400, description = "The body is not valid JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong admin token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The admin API is not enabled", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The name is missing or invalid", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The event log is unavailable, or the gateway is still reading tenants and keys after a start", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_tenant(
    State(iam): State<Iam>,
    headers: HeaderMap,
    RequestJson(body): RequestJson<CreateTenant>,
) -> Result<Response, Problem> {
    let name = valid_name(&body.name)?;
    let tenant = iam.create_tenant(name, request_id(&headers)).await?;
    let location = format!("/admin/v1/tenants/{}", tenant.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(Tenant::from(&tenant)),
    )
        .into_response())
}

/// Lists every tenant, oldest first.
#[utoipa::path(
    get,
    path = "/admin/v1/tenants",
    tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The tenants", body = TenantList),
        (status = 401, description = "Missing or wrong admin token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The admin API is not enabled", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The gateway is still reading tenants and keys after a start", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_tenants(State(iam): State<Iam>) -> Result<Json<TenantList>, Problem> {
    Ok(Json(TenantList {
        tenants: iam.tenants().await?.iter().map(Tenant::from).collect(),
    }))
}

/// Reads one tenant.
#[utoipa::path(
    get,
    path = "/admin/v1/tenants/{tenant_id}",
    tag = "admin",
    security(("admin_token" = [])),
    params(("tenant_id" = String, Path, description = "The tenant, `ten_…`")),
    responses(
        (status = 200, description = "The tenant", body = Tenant),
        (status = 401, description = "Missing or wrong admin token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant, or the admin API is not enabled", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The gateway is still reading tenants and keys after a start", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_tenant(State(iam): State<Iam>, Path(tenant_id): Path<String>) -> Result<Json<Tenant>, Problem> {
    iam.tenant(&tenant_id)
        .await?
        .map(|tenant| Json(Tenant::from(&tenant)))
        .ok_or_else(|| super::no_tenant(&tenant_id))
}

/// Issues an API key. The key is in this response only.
#[utoipa::path(
    post,
    path = "/admin/v1/tenants/{tenant_id}/api-keys",
    tag = "admin",
    security(("admin_token" = [])),
    params(("tenant_id" = String, Path, description = "The tenant, `ten_…`")),
    request_body = CreateApiKey,
    responses(
        (status = 201, description = "Issued; the key is usable at once", body = CreatedApiKey),
        (status = 400, description = "The body is not valid JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong admin token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant, or the admin API is not enabled", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Concurrent changes kept conflicting; retry", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The name is missing or invalid", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The event log is unavailable, or the gateway is still reading tenants and keys after a start", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn issue_key(
    State(iam): State<Iam>,
    Path(tenant_id): Path<String>,
    headers: HeaderMap,
    RequestJson(body): RequestJson<CreateApiKey>,
) -> Result<Response, Problem> {
    let name = valid_name(&body.name)?;
    let (key, metadata) = iam.issue_key(&tenant_id, name, request_id(&headers)).await?;
    let created = CreatedApiKey {
        id: metadata.id,
        name: metadata.name,
        display_prefix: metadata.display_prefix,
        key,
        created_at: metadata.created_at,
    };
    // The body holds a secret: no cache on the way may keep it.
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(created),
    )
        .into_response())
}

/// Lists a tenant's API keys, revoked ones included.
#[utoipa::path(
    get,
    path = "/admin/v1/tenants/{tenant_id}/api-keys",
    tag = "admin",
    security(("admin_token" = [])),
    params(("tenant_id" = String, Path, description = "The tenant, `ten_…`")),
    responses(
        (status = 200, description = "The keys", body = ApiKeyList),
        (status = 401, description = "Missing or wrong admin token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant, or the admin API is not enabled", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The gateway is still reading tenants and keys after a start", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_keys(State(iam): State<Iam>, Path(tenant_id): Path<String>) -> Result<Json<ApiKeyList>, Problem> {
    let tenant = iam
        .tenant(&tenant_id)
        .await?
        .ok_or_else(|| super::no_tenant(&tenant_id))?;
    Ok(Json(ApiKeyList {
        api_keys: tenant.keys.values().map(ApiKey::from).collect(),
    }))
}

/// Revokes an API key: requests with it are refused once this answers. Revoking a revoked key
/// succeeds and changes nothing.
#[utoipa::path(
    delete,
    path = "/admin/v1/tenants/{tenant_id}/api-keys/{key_id}",
    tag = "admin",
    security(("admin_token" = [])),
    params(
        ("tenant_id" = String, Path, description = "The tenant, `ten_…`"),
        ("key_id" = String, Path, description = "The key, `key_…`"),
    ),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "Missing or wrong admin token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant or key, or the admin API is not enabled", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Concurrent changes kept conflicting; retry", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The event log is unavailable, or the gateway is still reading tenants and keys after a start", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn revoke_key(
    State(iam): State<Iam>,
    Path((tenant_id, key_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, Problem> {
    iam.revoke_key(&tenant_id, &key_id, request_id(&headers)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A name for people, trimmed: 1 to [`MAX_NAME_CHARS`] characters without control characters.
fn valid_name(name: &str) -> Result<String, Problem> {
    let name = name.trim();
    let invalid = |why: &str| Problem::new(ProblemKind::ValidationFailed, format!("name: {why}"));
    if name.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(invalid(&format!("must be at most {MAX_NAME_CHARS} characters")));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid("must not contain control characters"));
    }
    Ok(name.to_owned())
}

/// The admin routes' OpenAPI description, with the security schemes `admin_token` (the admin
/// routes) and `api_key` (the public API, for the REST routes to refer to).
pub fn openapi() -> utoipa::openapi::OpenApi {
    AdminApi::openapi()
}

#[derive(OpenApi)]
#[openapi(
    paths(create_tenant, list_tenants, get_tenant, issue_key, list_keys, revoke_key),
    components(schemas(CreateTenant, Tenant, TenantList, CreateApiKey, CreatedApiKey, ApiKey, ApiKeyList, Problem)),
    modifiers(&SecuritySchemes),
    tags((name = "admin", description = "Tenants and API keys, for operators holding the admin token"))
)]
struct AdminApi;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The gateway's `auth.admin_token`."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("yy_ and 40 letters and digits")
                    .description(Some("An API key issued to the tenant through the admin API."))
                    .build(),
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(valid_name("  Acme  ").expect("valid"), "Acme");
        assert_eq!(valid_name(&"名".repeat(200)).expect("valid").chars().count(), 200);
        for bad in ["", "   ", "a\nb", &"x".repeat(201)] {
            let problem = valid_name(bad).expect_err(bad);
            assert_eq!(problem.kind(), Some(ProblemKind::ValidationFailed));
        }
    }

    #[test]
    fn openapi_describes_every_route_and_both_security_schemes() {
        let doc = serde_json::to_value(openapi()).expect("json");
        for path in [
            "/admin/v1/tenants",
            "/admin/v1/tenants/{tenant_id}",
            "/admin/v1/tenants/{tenant_id}/api-keys",
            "/admin/v1/tenants/{tenant_id}/api-keys/{key_id}",
        ] {
            assert!(doc["paths"][path].is_object(), "{path} is missing");
        }
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!(schemes["admin_token"]["scheme"], "bearer");
        assert_eq!(schemes["api_key"]["scheme"], "bearer");
        assert_eq!(
            doc["paths"]["/admin/v1/tenants"]["post"]["security"][0]["admin_token"],
            serde_json::json!([])
        );
    }
}
