//! The OpenAPI 3.1 document of the REST API, generated from the handlers' annotations and served
//! at `/openapi.json`.

use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::OpenApi;

use super::{cache, error, events, health, locks, sagas};

/// The REST API's OpenAPI description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Syros REST API",
        description = "Distributed locks with fencing tokens, a tagged cache, an event store and \
                       sagas. Every error answer is `{code, message, details}`.",
        license(name = "MIT")
    ),
    paths(
        locks::acquire, locks::renew, locks::release, locks::status, locks::list,
        locks::force_release,
        cache::get, cache::put, cache::delete, cache::invalidate_tag,
        events::append, events::read_stream, events::read_all,
        sagas::start, sagas::list, sagas::get, sagas::cancel,
        health::health, health::ready, health::metrics,
    ),
    components(schemas(error::ErrorBody, events::DirectionParam)),
    modifiers(&DefaultErrors, &BearerSecurity),
    tags(
        (name = "locks", description = "Distributed locks with fencing tokens"),
        (name = "admin", description = "Operator actions"),
        (name = "cache", description = "Key-value cache with TTLs and tags"),
        (name = "events", description = "Event streams with optimistic concurrency"),
        (name = "sagas", description = "Saga orchestration: start, observe, cancel"),
        (name = "operations", description = "Health, readiness and metrics"),
    )
)]
pub struct ApiDoc;

/// Documents that any status an operation does not list explicitly (a malformed body, a body
/// over the size limit, an unavailable store, ...) carries the JSON error body.
struct DefaultErrors;

impl utoipa::Modify for DefaultErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                operation.responses.responses.insert(
                    "default".to_string(),
                    ResponseBuilder::new()
                        .description("An error: `{code, message, details}`")
                        .content(
                            "application/json",
                            ContentBuilder::new()
                                .schema(Some(Ref::from_schema_name("ErrorBody")))
                                .build(),
                        )
                        .build()
                        .into(),
                );
            }
        }
    }
}

/// Declares the bearer credential (a JWT or an API key, docs/security.md) on every operation
/// except the open ones (`/health`, `/ready`, `/metrics`), and the answers a refusal gets.
struct BearerSecurity;

/// Name of the security scheme in the document.
const BEARER_SCHEME: &str = "bearerAuth";

impl utoipa::Modify for BearerSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER_SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A JWT (HS256, or RS256/ES256 from the JWKS file) or an API key \
                         (`syk_...`). Required when authentication is on; 401 without a valid \
                         one, 403 without the permission, 429 past a rate limit.",
                    ))
                    .build(),
            ),
        );
        openapi.security = Some(vec![SecurityRequirement::new(
            BEARER_SCHEME,
            Vec::<String>::new(),
        )]);
        for (path, item) in openapi.paths.paths.iter_mut() {
            let open = matches!(path.as_str(), "/health" | "/ready" | "/metrics");
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                if open {
                    // An empty requirement list: no credential needed.
                    operation.security = Some(Vec::new());
                    continue;
                }
                for (status, description) in [
                    ("401", "No valid credential (`unauthenticated`)"),
                    ("403", "The credential lacks the permission named in `details.permission` (`permission_denied`)"),
                    ("429", "Over a rate limit (`rate_limited`); `Retry-After` says when to retry"),
                ] {
                    operation.responses.responses.entry(status.to_string()).or_insert_with(|| {
                        ResponseBuilder::new()
                            .description(description)
                            .content(
                                "application/json",
                                ContentBuilder::new()
                                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                                    .build(),
                            )
                            .build()
                            .into()
                    });
                }
            }
        }
    }
}

/// The document as served, rendered once.
pub fn json() -> &'static str {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi().to_json().unwrap_or_else(|e| {
            format!("{{\"error\":\"cannot render the OpenAPI document: {e}\"}}")
        })
    })
}
