//! `/networks`: list, inspect, create, remove, prune, connect and disconnect (the default
//! `bridge`, the `host` and `none` pseudo-networks, and user-defined bridges).

use axum::extract::{Path as AxPath, RawQuery, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::url_pairs;
use super::{ApiError, Filters, State};
use crate::network::{Network, NewNetwork};

pub fn routes() -> Router<State> {
    Router::new()
        .route("/networks", get(list))
        .route("/networks/create", post(create))
        .route("/networks/prune", post(prune))
        .route("/networks/{id}", get(inspect))
        .route("/networks/{id}", delete(remove))
        .route("/networks/{id}/connect", post(connect))
        .route("/networks/{id}/disconnect", post(disconnect))
}

const MTU_OPTION: &str = "com.docker.network.driver.mtu";
const BRIDGE_OPTION: &str = "com.docker.network.bridge.name";
/// `Attachable` is kept among the options under this name (it means nothing without swarm,
/// but dockerd keeps and shows it on local networks too).
const ATTACHABLE: &str = "berth.attachable";

fn pseudo(name: &str) -> Value {
    use sha2::Digest;
    json!({
        "Name": name,
        "Id": format!("{:x}", sha2::Sha256::digest(format!("berth-network-{name}").as_bytes())),
        "Created": "0001-01-01T00:00:00Z",
        "Scope": "local",
        "Driver": if name == "none" { "null" } else { name },
        "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": null, "Config": []},
        "Internal": false,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": {},
        "Options": {},
        "Labels": {},
    })
}

async fn doc(d: &State, n: &Network) -> Value {
    let mut containers = serde_json::Map::new();
    for (id, e) in d.net.members(&n.name).await {
        containers.insert(
            id,
            json!({
                "Name": e.name,
                "EndpointID": e.id,
                "MacAddress": e.mac,
                "IPv4Address": format!("{}/{}", e.ip, e.prefix),
                "IPv6Address": if e.ip6.is_empty() {
                    String::new()
                } else {
                    format!("{}/{}", e.ip6, e.prefix6)
                },
            }),
        );
    }
    let mut ipam = json!({"Subnet": n.subnet, "Gateway": n.gateway});
    if let Some(r) = &n.ip_range {
        ipam["IPRange"] = r.clone().into();
    }
    if !n.aux_addresses.is_empty() {
        ipam["AuxiliaryAddresses"] = json!(n.aux_addresses);
    }
    let mut pools = vec![ipam];
    if let (Some(s6), Some(g6)) = (&n.subnet6, &n.gateway6) {
        let mut six = json!({"Subnet": s6, "Gateway": g6});
        if let Some(r) = &n.ip_range6 {
            six["IPRange"] = r.clone().into();
        }
        pools.push(six);
    }
    // As given at creation (compose compares them with its file's); the default bridge's
    // as dockerd shows docker0's.
    let mut options: serde_json::Map<String, Value> = n
        .options
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().into()))
        .collect();
    if n.name == "bridge" {
        options.insert(MTU_OPTION.into(), n.mtu.to_string().into());
        options.insert(BRIDGE_OPTION.into(), n.bridge.clone().into());
        options.insert(
            "com.docker.network.bridge.default_bridge".into(),
            "true".into(),
        );
    }
    json!({
        "Name": n.name,
        "Id": n.id,
        "Created": n.created,
        "Scope": "local",
        "Driver": n.driver,
        "EnableIPv6": n.subnet6.is_some(),
        "IPAM": {"Driver": "default", "Options": null, "Config": pools},
        "Internal": n.internal,
        "Attachable": n.options.get(ATTACHABLE).is_some_and(|v| v == "true"),
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": containers,
        "Options": options,
        "Labels": n.labels,
    })
}

async fn list(AxState(d): AxState<State>, RawQuery(q): RawQuery) -> Result<Json<Value>, ApiError> {
    let query = q.as_deref().map(url_pairs).unwrap_or_default();
    let f = Filters::parse(&query)?;
    let mut out = Vec::new();
    for n in d.net.networks().await {
        out.push(doc(&d, &n).await);
    }
    out.push(pseudo("host"));
    out.push(pseudo("none"));
    let names = f.get("name");
    let ids = f.get("id");
    let drivers = f.get("driver");
    let types = f.get("type");
    let labels = f.get("label");
    out.retain(|n| {
        let name = n["Name"].as_str().unwrap_or("");
        let id = n["Id"].as_str().unwrap_or("");
        let builtin = matches!(name, "bridge" | "host" | "none");
        (names.is_empty() || names.iter().any(|x| name.contains(x.as_str())))
            && (ids.is_empty() || ids.iter().any(|x| id.starts_with(x.as_str())))
            && (drivers.is_empty() || drivers.iter().any(|x| n["Driver"] == x.as_str()))
            && (types.is_empty()
                || types
                    .iter()
                    .any(|t| (t == "builtin" && builtin) || (t == "custom" && !builtin)))
            && labels.iter().all(|l| match l.split_once('=') {
                Some((k, v)) => n["Labels"][k] == v,
                None => !n["Labels"][l.as_str()].is_null(),
            })
    });
    Ok(Json(out.into()))
}

async fn inspect(
    AxState(d): AxState<State>,
    AxPath(what): AxPath<String>,
) -> Result<Json<Value>, ApiError> {
    if matches!(what.as_str(), "host" | "none") {
        return Ok(Json(pseudo(&what)));
    }
    let n =
        d.net.find(&what).await.ok_or_else(|| {
            ApiError::new(StatusCode::NOT_FOUND, format!("network {what} not found"))
        })?;
    Ok(Json(doc(&d, &n).await))
}

/// `POST /networks/create`'s body: each field honoured or refused by name.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateBody {
    #[serde(default, rename = "EnableIPv6")]
    enable_ipv6: Option<bool>,
    #[serde(default)]
    attachable: Option<bool>,
    #[serde(default)]
    ingress: Option<bool>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    config_only: Option<bool>,
    #[serde(default)]
    config_from: Option<Value>,
    /// Always true since API 1.44; accepted.
    #[serde(default)]
    #[allow(dead_code)]
    check_duplicate: Option<bool>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    driver: Option<String>,
    #[serde(default)]
    internal: Option<bool>,
    #[serde(default)]
    labels: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default)]
    options: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default, rename = "IPAM")]
    ipam: Option<Ipam>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Ipam {
    #[serde(default)]
    driver: Option<String>,
    #[serde(default)]
    options: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default)]
    config: Option<Vec<IpamConfig>>,
}

#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IpamConfig {
    #[serde(default)]
    subnet: Option<String>,
    #[serde(default)]
    gateway: Option<String>,
    #[serde(default, rename = "IPRange")]
    ip_range: Option<String>,
    #[serde(default)]
    auxiliary_addresses: Option<std::collections::BTreeMap<String, String>>,
}

async fn create(AxState(d): AxState<State>, body: axum::body::Bytes) -> Result<Response, ApiError> {
    let v: CreateBody = super::decode(&body)?;
    let name = v
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request("network name is required"))?;
    let driver = v
        .driver
        .as_deref()
        .filter(|x| !x.is_empty())
        .unwrap_or("bridge");
    if driver != "bridge" {
        return Err(ApiError::bad_request(format!(
            "driver {driver:?} is not supported (bridge)"
        )));
    }
    if matches!(name.as_str(), "bridge" | "host" | "none") {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("operation is not permitted on predefined {name} network"),
        ));
    }
    if d.net.find(&name).await.is_some_and(|n| n.name == name) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("network with name {name} already exists"),
        ));
    }
    if v.ingress == Some(true) {
        return Err(ApiError::bad_request(
            "Ingress: ingress networks need swarm mode, which is not supported by Berth",
        ));
    }
    if let Some(sc) = v
        .scope
        .as_deref()
        .filter(|s| !s.is_empty() && *s != "local")
    {
        return Err(ApiError::bad_request(format!(
            "Scope {sc:?}: only local networks exist without swarm mode, which is not supported by Berth"
        )));
    }
    if v.config_only == Some(true)
        || v.config_from
            .as_ref()
            .is_some_and(|c| !c["Network"].as_str().unwrap_or("").is_empty())
    {
        return Err(ApiError::bad_request(
            "ConfigOnly and ConfigFrom (configuration-only networks) are not supported by Berth",
        ));
    }
    let ipam = v.ipam.as_ref();
    if let Some(drv) = ipam
        .and_then(|i| i.driver.as_deref())
        .filter(|x| !x.is_empty() && *x != "default")
    {
        return Err(ApiError::bad_request(format!(
            "IPAM.Driver {drv:?} is not supported by Berth (default)"
        )));
    }
    if ipam
        .and_then(|i| i.options.as_ref())
        .is_some_and(|o| !o.is_empty())
    {
        return Err(ApiError::bad_request(
            "IPAM.Options are not supported by Berth's default IPAM driver",
        ));
    }
    // One IPv4 pool and one IPv6 pool at most, told apart by their subnets.
    let pools: Vec<IpamConfig> = ipam.and_then(|i| i.config.clone()).unwrap_or_default();
    let is6 = |c: &IpamConfig| {
        c.subnet.as_deref().is_some_and(|x| x.contains(':'))
            || c.gateway.as_deref().is_some_and(|x| x.contains(':'))
    };
    let (v6s, v4s): (Vec<IpamConfig>, Vec<IpamConfig>) = pools.into_iter().partition(is6);
    if v4s.len() > 1 || v6s.len() > 1 {
        return Err(ApiError::bad_request(
            "IPAM.Config: Berth takes one IPv4 and one IPv6 pool per network",
        ));
    }
    let first = v4s.into_iter().next().unwrap_or_default();
    let six = v6s.into_iter().next().unwrap_or_default();
    let s = |x: &Option<String>| x.clone().filter(|x| !x.is_empty());
    let labels = v.labels.clone().unwrap_or_default();
    let mut options = v.options.clone().unwrap_or_default();
    if v.attachable == Some(true) {
        options.insert(ATTACHABLE.into(), "true".into());
    }
    let n = d
        .net
        .create_network(NewNetwork {
            name,
            subnet: s(&first.subnet),
            gateway: s(&first.gateway),
            internal: v.internal.unwrap_or(false),
            labels,
            ip_range: s(&first.ip_range),
            mtu: match options.get(MTU_OPTION) {
                Some(m) => Some(
                    m.parse()
                        .map_err(|_| ApiError::bad_request(format!("invalid MTU option {m:?}")))?,
                ),
                None => None,
            },
            bridge: options.get(BRIDGE_OPTION).cloned(),
            options: options.clone(),
            ipv6: v.enable_ipv6.unwrap_or(false),
            subnet6: s(&six.subnet),
            gateway6: s(&six.gateway),
            ip_range6: s(&six.ip_range),
            aux_addresses: first.auxiliary_addresses.clone().unwrap_or_default(),
        })
        .await?;
    crate::events::publish_network(&d, "create", &n.id, &n.name);
    let ignored: Vec<&str> = options
        .keys()
        .filter(|k| *k != MTU_OPTION && *k != BRIDGE_OPTION && *k != ATTACHABLE)
        .map(String::as_str)
        .collect();
    let warning = if ignored.is_empty() {
        String::new()
    } else {
        format!(
            "driver options not supported, ignored: {}",
            ignored.join(", ")
        )
    };
    Ok((
        StatusCode::CREATED,
        Json(json!({"Id": n.id, "Warning": warning})),
    )
        .into_response())
}

async fn remove(
    AxState(d): AxState<State>,
    AxPath(what): AxPath<String>,
) -> Result<Response, ApiError> {
    if matches!(what.as_str(), "bridge" | "host" | "none") {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("{what} is a pre-defined network and cannot be removed"),
        ));
    }
    if d.net.find(&what).await.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("network {what} not found"),
        ));
    }
    let n = d.net.remove_network(&what).await?;
    crate::events::publish_network(&d, "destroy", &n.id, &n.name);
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn prune(AxState(d): AxState<State>) -> Result<Json<Value>, ApiError> {
    let mut deleted = Vec::new();
    for n in d.net.networks().await {
        if n.name == "bridge" || !d.net.members(&n.name).await.is_empty() {
            continue;
        }
        if d.net.remove_network(&n.name).await.is_ok() {
            crate::events::publish_network(&d, "destroy", &n.id, &n.name);
            deleted.push(n.name);
        }
    }
    Ok(Json(json!({"NetworksDeleted": deleted})))
}

/// The network and container a connect/disconnect body names, and the body.
async fn target(
    d: &State,
    what: &str,
    body: &[u8],
) -> Result<(Network, crate::containers::Container, Value), ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    let n =
        d.net.find(what).await.ok_or_else(|| {
            ApiError::new(StatusCode::NOT_FOUND, format!("network {what} not found"))
        })?;
    let c = crate::containers::find(d, v["Container"].as_str().unwrap_or("")).await?;
    Ok((n, c, v))
}

/// `POST /networks/{id}/connect`: one more interface for a container (running or not).
async fn connect(
    AxState(d): AxState<State>,
    AxPath(what): AxPath<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let (n, c, v) = target(&d, &what, &body).await?;
    crate::containers::network::connect(&d, &c, &n, &v["EndpointConfig"]).await?;
    Ok(StatusCode::OK.into_response())
}

/// `POST /networks/{id}/disconnect`.
async fn disconnect(
    AxState(d): AxState<State>,
    AxPath(what): AxPath<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let (n, c, _) = target(&d, &what, &body).await?;
    crate::containers::network::disconnect(&d, &c, &n).await?;
    Ok(StatusCode::OK.into_response())
}
