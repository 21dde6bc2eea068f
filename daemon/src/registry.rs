//! An OCI distribution client: endpoints (mirrors for Docker Hub, plain HTTP for insecure
//! and loopback registries), authentication (anonymous, basic, bearer tokens through the
//! `WWW-Authenticate` challenge), manifests and blobs, uploads.
//!
//! Credentials never follow a redirect to another host: reqwest drops the `Authorization`
//! header when a redirect changes the host (blob downloads are often redirected to storage).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};

use crate::config::Config;
use crate::reference::{Reference, DEFAULT_DOMAIN};

pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{method} {url}")]
    Http {
        method: String,
        url: String,
        #[source]
        err: reqwest::Error,
    },
    #[error("{method} {url}: {status}{}", if .message.is_empty() { String::new() } else { format!(": {}", .message) })]
    Status {
        method: String,
        url: String,
        status: StatusCode,
        message: String,
    },
    #[error("registry {registry}: unauthorized{}", if .detail.is_empty() { String::new() } else { format!(": {}", .detail) })]
    Unauthorized { registry: String, detail: String },
    #[error("{what} not found in {repository}")]
    NotFound { what: String, repository: String },
    #[error("registry {registry}: {message}")]
    Protocol { registry: String, message: String },
    #[error("no registry to pull {reference} from: Docker Hub fallback is off (registry-fallback: false) and no mirror has it")]
    NoEndpoint { reference: String },
}

impl Error {
    /// Worth another try (a broken connection, a server error)?
    pub fn transient(&self) -> bool {
        match self {
            Error::Http { err, .. } => !err.is_builder() && !err.is_redirect(),
            Error::Status { status, .. } => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
            _ => false,
        }
    }
}

/// Where a repository is served.
#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint {
    /// scheme://host[:port]
    pub base: String,
    /// host[:port], for credentials.
    pub host: String,
    pub mirror: bool,
}

/// username, password per registry host.
pub type Credentials = HashMap<String, (String, String)>;

/// A registry address as a credentials key: `https://h:5000/` → `h:5000`; Docker Hub's
/// names (`index.docker.io`, `https://index.docker.io/v1/`, none) → `docker.io`.
pub fn normalize_host(addr: &str) -> String {
    let h = addr
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .trim_end_matches("/v1")
        .trim_end_matches("/v2")
        .to_string();
    if h.is_empty() || h == "index.docker.io" || h == "registry-1.docker.io" {
        DEFAULT_DOMAIN.to_string()
    } else {
        h
    }
}

/// Read Docker's client config (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`):
/// `auths.<host>.auth` = base64("user:password").
pub fn docker_credentials() -> Credentials {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".docker")));
    let Some(dir) = dir else {
        return Credentials::new();
    };
    let Ok(text) = std::fs::read_to_string(dir.join("config.json")) else {
        return Credentials::new();
    };
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let mut out = Credentials::new();
    if let Some(auths) = v["auths"].as_object() {
        for (host, a) in auths {
            let host = normalize_host(host);
            if let Some(enc) = a["auth"].as_str() {
                if let Ok(dec) = base64::engine::general_purpose::STANDARD.decode(enc) {
                    let s = String::from_utf8_lossy(&dec).into_owned();
                    if let Some((u, p)) = s.split_once(':') {
                        out.insert(host, (u.to_string(), p.to_string()));
                    }
                }
            } else if let (Some(u), Some(p)) = (a["username"].as_str(), a["password"].as_str()) {
                out.insert(host, (u.to_string(), p.to_string()));
            }
        }
    }
    out
}

pub struct Registry {
    http: reqwest::Client,
    /// For insecure registries that speak TLS with a certificate we cannot verify.
    http_unverified: reqwest::Client,
    pub cfg: Arc<Config>,
    creds: Credentials,
    /// Authorization header values by (host, scope).
    tokens: Mutex<HashMap<(String, String), String>>,
}

fn client(unverified: bool) -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(15))
        .read_timeout(Duration::from_secs(60))
        .danger_accept_invalid_certs(unverified)
        .pool_max_idle_per_host(8)
        .build()
        .expect("http client")
}

impl Registry {
    pub fn new(cfg: Arc<Config>, creds: Credentials) -> Registry {
        Registry {
            http: client(false),
            http_unverified: client(true),
            cfg,
            creds,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// Endpoints to try for `r`, in order.
    pub fn endpoints(&self, r: &Reference) -> Result<Vec<Endpoint>, Error> {
        let mut out = Vec::new();
        if r.domain == DEFAULT_DOMAIN {
            for m in &self.cfg.registry_mirrors {
                let base = m.trim_end_matches('/').to_string();
                let host = base.split("://").nth(1).unwrap_or(&base).to_string();
                out.push(Endpoint {
                    base,
                    host,
                    mirror: true,
                });
            }
            if self.cfg.registry_fallback {
                out.push(Endpoint {
                    base: "https://registry-1.docker.io".into(),
                    host: DEFAULT_DOMAIN.into(),
                    mirror: false,
                });
            }
            if out.is_empty() {
                return Err(Error::NoEndpoint {
                    reference: r.to_string(),
                });
            }
            return Ok(out);
        }
        let scheme = if self.cfg.insecure(&r.domain) {
            "http"
        } else {
            "https"
        };
        out.push(Endpoint {
            base: format!("{scheme}://{}", r.domain),
            host: r.domain.clone(),
            mirror: false,
        });
        Ok(out)
    }

    /// `docker login`: check this registry's credentials for `host` (`GET /v2/`, answering
    /// its challenge with them). Docker Hub goes through `endpoints` like a pull would,
    /// so a daemon without fallback never contacts it.
    pub async fn login(&self, host: &str) -> Result<(), Error> {
        let probe = Reference::parse(&format!("{host}/login/probe:latest")).map_err(|e| {
            Error::Protocol {
                registry: host.to_string(),
                message: format!("not a registry address: {e}"),
            }
        })?;
        let ep = self
            .endpoints(&probe)?
            .into_iter()
            .find(|e| !e.mirror)
            .ok_or_else(|| Error::NoEndpoint {
                reference: format!(
                    "{host} (Docker Hub is not contacted: registry-fallback is false)"
                ),
            })?;
        if !self.creds.contains_key(&ep.host) {
            return Err(Error::Unauthorized {
                registry: ep.host.clone(),
                detail: "no username and password given".into(),
            });
        }
        let url = format!("{}/v2/", ep.base);
        let resp = self.send(&ep, "", Method::GET, &url, |rb| rb).await?;
        check(resp, "GET", &url).await?;
        Ok(())
    }

    fn client_for(&self, ep: &Endpoint) -> &reqwest::Client {
        if ep.base.starts_with("https://") && self.cfg.insecure(&ep.host) {
            &self.http_unverified
        } else {
            &self.http
        }
    }

    /// Send a request for repository `repo` needing `scope`, answering one auth challenge.
    pub async fn send(
        &self,
        ep: &Endpoint,
        scope: &str,
        method: Method,
        url: &str,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, Error> {
        let key = (ep.host.clone(), scope.to_string());
        for attempt in 0..2 {
            let mut rb = self.client_for(ep).request(method.clone(), url);
            if let Some(h) = self.tokens.lock().unwrap().get(&key) {
                rb = rb.header(AUTHORIZATION, h.clone());
            }
            let resp = build(rb).send().await.map_err(|err| Error::Http {
                method: method.to_string(),
                url: url.to_string(),
                err,
            })?;
            if resp.status() != StatusCode::UNAUTHORIZED || attempt == 1 {
                if resp.status() == StatusCode::UNAUTHORIZED {
                    return Err(Error::Unauthorized {
                        registry: ep.host.clone(),
                        detail: error_message(resp).await,
                    });
                }
                return Ok(resp);
            }
            let challenge = resp
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let header = self.authorize(ep, &challenge, scope).await?;
            self.tokens.lock().unwrap().insert(key.clone(), header);
        }
        unreachable!("the loop returns on its second pass")
    }

    /// The repositories a registry lists (`GET /v2/_catalog`), following its pages.
    pub async fn catalog(&self, ep: &Endpoint) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        let mut url = format!("{}/v2/_catalog?n=1000", ep.base);
        for _ in 0..100 {
            let resp = self
                .send(ep, "registry:catalog:*", Method::GET, &url, |rb| rb)
                .await?;
            let resp = check(resp, "GET", &url).await?;
            let next = resp
                .headers()
                .get("Link")
                .and_then(|l| l.to_str().ok())
                .and_then(|l| Some(l.split('<').nth(1)?.split('>').next()?.to_string()));
            let v: serde_json::Value = resp.json().await.map_err(|err| Error::Http {
                method: "GET".into(),
                url: url.clone(),
                err,
            })?;
            out.extend(
                v["repositories"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r.as_str().map(String::from)),
            );
            match next {
                Some(n) if n.starts_with('/') => url = format!("{}{n}", ep.base),
                _ => break,
            }
        }
        Ok(out)
    }

    /// The Authorization header value answering `challenge`.
    async fn authorize(
        &self,
        ep: &Endpoint,
        challenge: &str,
        scope: &str,
    ) -> Result<String, Error> {
        let creds = self.creds.get(&ep.host);
        let (scheme, params) = parse_challenge(challenge);
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => {
                let (u, p) = creds.ok_or_else(|| Error::Unauthorized {
                    registry: ep.host.clone(),
                    detail: "the registry wants a username and password (docker login)".into(),
                })?;
                Ok(basic(u, p))
            }
            "bearer" => {
                let realm = params.get("realm").ok_or_else(|| Error::Protocol {
                    registry: ep.host.clone(),
                    message: format!("bearer challenge without a realm: {challenge}"),
                })?;
                let mut url = reqwest::Url::parse(realm).map_err(|e| Error::Protocol {
                    registry: ep.host.clone(),
                    message: format!("token realm {realm:?}: {e}"),
                })?;
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = params.get("service") {
                        q.append_pair("service", s);
                    }
                    for s in scope.split(' ').filter(|s| !s.is_empty()) {
                        q.append_pair("scope", s);
                    }
                }
                let mut rb = self.http.get(url.clone());
                if let Some((u, p)) = creds {
                    rb = rb.header(AUTHORIZATION, basic(u, p));
                }
                let resp = rb.send().await.map_err(|err| Error::Http {
                    method: "GET".into(),
                    url: url.to_string(),
                    err,
                })?;
                if !resp.status().is_success() {
                    return Err(Error::Unauthorized {
                        registry: ep.host.clone(),
                        detail: format!(
                            "token server {}: {}",
                            url.host_str().unwrap_or(""),
                            resp.status()
                        ),
                    });
                }
                let v: serde_json::Value = resp.json().await.map_err(|err| Error::Http {
                    method: "GET".into(),
                    url: url.to_string(),
                    err,
                })?;
                let tok = v["token"]
                    .as_str()
                    .or(v["access_token"].as_str())
                    .ok_or_else(|| Error::Protocol {
                        registry: ep.host.clone(),
                        message: "token server answered without a token".into(),
                    })?;
                Ok(format!("Bearer {tok}"))
            }
            _ => Err(Error::Unauthorized {
                registry: ep.host.clone(),
                detail: format!("unsupported authentication challenge {challenge:?}"),
            }),
        }
    }

    /// GET a manifest by tag or digest: (bytes, media type, digest the registry reports).
    pub async fn get_manifest(
        &self,
        ep: &Endpoint,
        repo: &str,
        object: &str,
    ) -> Result<(Vec<u8>, String, Option<String>), Error> {
        let url = format!("{}/v2/{repo}/manifests/{object}", ep.base);
        let scope = format!("repository:{repo}:pull");
        let resp = self
            .send(ep, &scope, Method::GET, &url, |rb| {
                rb.header(ACCEPT, MANIFEST_ACCEPT)
            })
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(Error::NotFound {
                what: format!("manifest {object}"),
                repository: format!("{}/{repo}", ep.host),
            });
        }
        let resp = check(resp, "GET", &url).await?;
        let mt = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        let digest = header(resp.headers(), "docker-content-digest");
        let body = resp.bytes().await.map_err(|err| Error::Http {
            method: "GET".into(),
            url: url.clone(),
            err,
        })?;
        if body.len() > 4 << 20 {
            return Err(Error::Protocol {
                registry: ep.host.clone(),
                message: format!("manifest {object} is larger than 4 MiB"),
            });
        }
        Ok((body.to_vec(), mt, digest))
    }

    /// GET a blob from `offset` (a Range request when resuming).
    pub async fn get_blob(
        &self,
        ep: &Endpoint,
        repo: &str,
        digest: &str,
        offset: u64,
    ) -> Result<Response, Error> {
        let url = format!("{}/v2/{repo}/blobs/{digest}", ep.base);
        let scope = format!("repository:{repo}:pull");
        let resp = self
            .send(ep, &scope, Method::GET, &url, |rb| {
                if offset > 0 {
                    rb.header(reqwest::header::RANGE, format!("bytes={offset}-"))
                } else {
                    rb
                }
            })
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(Error::NotFound {
                what: format!("blob {digest}"),
                repository: format!("{}/{repo}", ep.host),
            });
        }
        check(resp, "GET", &url).await
    }

    /// Does the repository have the blob?
    pub async fn has_blob(&self, ep: &Endpoint, repo: &str, digest: &str) -> Result<bool, Error> {
        let url = format!("{}/v2/{repo}/blobs/{digest}", ep.base);
        let scope = format!("repository:{repo}:pull,push");
        let resp = self.send(ep, &scope, Method::HEAD, &url, |rb| rb).await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => check(resp, "HEAD", &url).await.map(|_| false),
        }
    }

    /// Start an upload, or mount `digest` from `from` (same registry). Ok(None) = mounted.
    pub async fn start_upload(
        &self,
        ep: &Endpoint,
        repo: &str,
        mount: Option<(&str, &str)>,
    ) -> Result<Option<String>, Error> {
        let mut url = format!("{}/v2/{repo}/blobs/uploads/", ep.base);
        let mut scope = format!("repository:{repo}:pull,push");
        if let Some((digest, from)) = mount {
            url.push_str(&format!("?mount={digest}&from={from}"));
            scope.push_str(&format!(" repository:{from}:pull"));
        }
        let resp = self
            .send(ep, &scope, Method::POST, &url, |rb| {
                rb.header(reqwest::header::CONTENT_LENGTH, "0")
            })
            .await?;
        if resp.status() == StatusCode::CREATED && mount.is_some() {
            return Ok(None);
        }
        let resp = check(resp, "POST", &url).await?;
        let loc = header(resp.headers(), "location").ok_or_else(|| Error::Protocol {
            registry: ep.host.clone(),
            message: "upload started without a Location".into(),
        })?;
        Ok(Some(absolute(&ep.base, &loc)))
    }

    /// PATCH one chunk to an upload; returns the next location.
    pub async fn upload_chunk(
        &self,
        ep: &Endpoint,
        repo: &str,
        location: &str,
        start: u64,
        chunk: Vec<u8>,
    ) -> Result<String, Error> {
        let scope = format!("repository:{repo}:pull,push");
        let end = start + chunk.len() as u64 - 1;
        let chunk = bytes_of(chunk);
        let resp = self
            .send(ep, &scope, Method::PATCH, location, |rb| {
                rb.header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                    .header(reqwest::header::CONTENT_RANGE, format!("{start}-{end}"))
                    .body(chunk.clone())
            })
            .await?;
        let resp = check(resp, "PATCH", location).await?;
        let loc = header(resp.headers(), "location").ok_or_else(|| Error::Protocol {
            registry: ep.host.clone(),
            message: "upload chunk accepted without a Location".into(),
        })?;
        Ok(absolute(&ep.base, &loc))
    }

    /// Finish an upload: PUT ?digest=.
    pub async fn finish_upload(
        &self,
        ep: &Endpoint,
        repo: &str,
        location: &str,
        digest: &str,
    ) -> Result<(), Error> {
        let scope = format!("repository:{repo}:pull,push");
        let sep = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{sep}digest={digest}");
        let resp = self
            .send(ep, &scope, Method::PUT, &url, |rb| {
                rb.header(reqwest::header::CONTENT_LENGTH, "0")
            })
            .await?;
        check(resp, "PUT", &url).await.map(|_| ())
    }

    pub async fn put_manifest(
        &self,
        ep: &Endpoint,
        repo: &str,
        object: &str,
        media_type: &str,
        body: Vec<u8>,
    ) -> Result<Option<String>, Error> {
        let url = format!("{}/v2/{repo}/manifests/{object}", ep.base);
        let scope = format!("repository:{repo}:pull,push");
        let body = bytes_of(body);
        let resp = self
            .send(ep, &scope, Method::PUT, &url, |rb| {
                rb.header(reqwest::header::CONTENT_TYPE, media_type)
                    .body(body.clone())
            })
            .await?;
        let resp = check(resp, "PUT", &url).await?;
        Ok(header(resp.headers(), "docker-content-digest"))
    }
}

/// Bytes are cheap to clone for a request retried after an auth challenge.
fn bytes_of(v: Vec<u8>) -> bytes::Bytes {
    bytes::Bytes::from(v)
}

fn basic(u: &str, p: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
    )
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .map(String::from)
}

fn absolute(base: &str, loc: &str) -> String {
    if loc.starts_with("http://") || loc.starts_with("https://") {
        loc.to_string()
    } else {
        format!("{base}{loc}")
    }
}

/// `Bearer realm="…",service="…",scope="…"` → ("Bearer", params).
pub fn parse_challenge(c: &str) -> (String, HashMap<String, String>) {
    let c = c.trim();
    let (scheme, rest) = c.split_once(' ').unwrap_or((c, ""));
    let mut params = HashMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let Some((k, v)) = rest.split_once('=') else {
            break;
        };
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let v = v.trim_start();
        let (val, next) = if let Some(q) = v.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (q[..end].to_string(), &q[end + 1..]),
                None => (q.to_string(), ""),
            }
        } else {
            match v.find(',') {
                Some(end) => (v[..end].trim().to_string(), &v[end..]),
                None => (v.trim().to_string(), ""),
            }
        };
        params.insert(k, val);
        rest = next.trim_start().trim_start_matches(',').trim_start();
    }
    (scheme.to_string(), params)
}

/// A non-success response as an error carrying the registry's message.
pub async fn check(resp: Response, method: &str, url: &str) -> Result<Response, Error> {
    if resp.status().is_success() {
        return Ok(resp);
    }
    let status = resp.status();
    Err(Error::Status {
        method: method.to_string(),
        url: url.to_string(),
        status,
        message: error_message(resp).await,
    })
}

async fn error_message(resp: Response) -> String {
    let body = resp.text().await.unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    if let Some(errs) = v["errors"].as_array() {
        return errs
            .iter()
            .map(|e| {
                format!(
                    "{}: {}",
                    e["code"].as_str().unwrap_or(""),
                    e["message"].as_str().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
    }
    body.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull""#,
        );
        assert_eq!(s, "Bearer");
        assert_eq!(p["realm"], "https://auth.example/token");
        assert_eq!(p["service"], "registry.example");
        assert_eq!(p["scope"], "repository:a/b:pull");
        let (s, p) = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!(s, "Basic");
        assert_eq!(p["realm"], "Registry Realm");
    }

    #[test]
    fn hub_goes_to_mirrors_and_falls_back_only_when_allowed() {
        let r = Reference::parse("busybox").unwrap();
        let mut cfg = Config {
            registry_mirrors: vec!["http://127.0.0.1:5000/".into()],
            registry_fallback: false,
            ..Default::default()
        };
        let reg = Registry::new(Arc::new(cfg.clone()), Credentials::new());
        let eps = reg.endpoints(&r).unwrap();
        assert_eq!(eps.len(), 1);
        assert_eq!(eps[0].base, "http://127.0.0.1:5000");
        cfg.registry_mirrors.clear();
        let reg = Registry::new(Arc::new(cfg), Credentials::new());
        assert!(matches!(reg.endpoints(&r), Err(Error::NoEndpoint { .. })));
        let local = Reference::parse("127.0.0.1:5000/x").unwrap();
        assert_eq!(
            reg.endpoints(&local).unwrap()[0].base,
            "http://127.0.0.1:5000"
        );
    }
}
