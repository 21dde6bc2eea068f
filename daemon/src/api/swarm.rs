//! Swarm mode and plugins, which Berth does not have, answered the way dockerd answers when
//! the node is not in a swarm: the read and leave endpoints say so with 503 (clients such
//! as docker-py and the docker CLI tolerate that), and the endpoints that would create a
//! swarm, a service or a plugin refuse with 501 naming what is not supported.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::routing::{any, get};
use axum::{Json, Router};

use super::{ApiError, State};

const NOT_MANAGER: &str = "This node is not a swarm manager. Swarm mode is not supported by Berth, so this node never is one.";

pub fn routes() -> Router<State> {
    Router::new()
        .route("/swarm", get(not_manager))
        .route("/swarm/unlockkey", get(not_manager))
        .route("/swarm/leave", any(not_in_swarm))
        .route("/swarm/{op}", any(unsupported_swarm))
        .route("/nodes", get(not_manager))
        .route("/nodes/{*rest}", any(not_manager))
        .route("/services", get(not_manager))
        .route("/services/{*rest}", any(services))
        .route("/tasks", get(not_manager))
        .route("/tasks/{*rest}", any(not_manager))
        .route("/secrets", get(not_manager))
        .route("/secrets/{*rest}", any(secrets))
        .route("/configs", get(not_manager))
        .route("/configs/{*rest}", any(configs))
        .route("/plugins", get(plugins))
        .route("/plugins/privileges", get(unsupported_plugins))
        .route("/plugins/{*rest}", any(plugin))
}

async fn not_manager() -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, NOT_MANAGER)
}

async fn not_in_swarm() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "This node is not part of a swarm",
    )
}

/// `init`, `join`, `update`, `unlock`: creating or changing a swarm.
async fn unsupported_swarm(req: Request) -> ApiError {
    let what = req.uri().path().trim_start_matches("/swarm/").to_string();
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        format!("swarm {what}: swarm mode is not supported by Berth"),
    )
}

fn create_or_not_manager(req: &Request, what: &str) -> ApiError {
    if req.uri().path().ends_with("/create") {
        ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!("{what} create: {what}s need swarm mode, which is not supported by Berth"),
        )
    } else {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, NOT_MANAGER)
    }
}

async fn services(req: Request) -> ApiError {
    create_or_not_manager(&req, "service")
}

async fn secrets(req: Request) -> ApiError {
    create_or_not_manager(&req, "secret")
}

async fn configs(req: Request) -> ApiError {
    create_or_not_manager(&req, "config")
}

/// No plugin is ever installed.
async fn plugins() -> Json<serde_json::Value> {
    Json(serde_json::json!([]))
}

async fn unsupported_plugins() -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "plugins are not supported by Berth",
    )
}

/// `/plugins/pull`, `/plugins/create` are refused; anything about a named plugin is 404,
/// since none exists.
async fn plugin(req: Request) -> ApiError {
    let path = req.uri().path().trim_start_matches("/plugins/");
    if matches!(path, "pull" | "create") {
        return ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!("plugin {path}: plugins are not supported by Berth"),
        );
    }
    let name = path.rsplit_once('/').map(|(n, _)| n).unwrap_or(path);
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("plugin \"{name}\" not found"),
    )
}
