//! What a request carries, decoded: JSON bodies into typed requests ([`decode`], naming
//! the field that does not fit), query strings ([`url_pairs`], [`url_all`], [`is_true`],
//! [`Filters`]), and large bodies spooled to a file ([`spool`]).

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::StatusCode;
use tokio_stream::StreamExt;

use super::{ApiError, State};

/// A JSON request body decoded into `T`: malformed JSON, a body that is not an object,
/// and a field of the wrong type are each refused (400) with a message naming the field.
pub fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.len() > MAX_BODY {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than {} MiB", MAX_BODY >> 20),
        ));
    }
    let v: serde_json::Value = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?
    };
    if !v.is_object() {
        return Err(ApiError::bad_request("invalid JSON: want an object"));
    }
    decode_value(v)
}

/// Requests larger than this are refused.
pub const MAX_BODY: usize = 4 << 20;

fn decode_value<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, ApiError> {
    match serde_json::from_value::<T>(v.clone()) {
        Ok(t) => Ok(t),
        Err(e) => Err(ApiError::bad_request(format!(
            "invalid {}: {e}",
            bad_field::<T>(&v, &mut Vec::new()).unwrap_or_else(|| "request".into())
        ))),
    }
}

/// The path (`HostConfig.Memory`) of the first field whose value alone fails to decode.
fn bad_field<T: serde::de::DeserializeOwned>(
    v: &serde_json::Value,
    at: &mut Vec<String>,
) -> Option<String> {
    let obj = v.as_object()?;
    for (k, sub) in obj {
        at.push(k.clone());
        let mut probe = serde_json::json!({});
        let mut slot = &mut probe;
        for p in &at[..at.len() - 1] {
            slot = &mut slot[p.as_str()];
        }
        slot[k.as_str()] = sub.clone();
        if serde_json::from_value::<T>(probe).is_err() {
            let deeper = bad_field::<T>(sub, at);
            let here = at.join(".");
            at.pop();
            return Some(deeper.unwrap_or(here));
        }
        at.pop();
    }
    None
}

/// Docker's `filters` query parameter: `{"key": ["value", …]}` or `{"key": {"value": true}}`.
#[derive(Debug, Default)]
pub struct Filters(serde_json::Map<String, serde_json::Value>);

impl Filters {
    /// From a request's query pairs ("" or absent: no filters).
    pub fn parse(query: &std::collections::BTreeMap<String, String>) -> Result<Filters, ApiError> {
        match query.get("filters").filter(|f| !f.is_empty()) {
            Some(f) => Self::from_json(f),
            None => Ok(Filters::default()),
        }
    }

    pub fn from_json(f: &str) -> Result<Filters, ApiError> {
        serde_json::from_str(f)
            .map(Filters)
            .map_err(|e| ApiError::bad_request(format!("invalid filters: {e}")))
    }

    /// The values given for `key` (none: no constraint).
    pub fn get(&self, key: &str) -> Vec<String> {
        match self.0.get(key) {
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            Some(serde_json::Value::Object(o)) => o.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.keys()
    }
}

/// Docker's boolean query values.
pub fn is_true(q: &std::collections::BTreeMap<String, String>, k: &str) -> bool {
    q.get(k)
        .is_some_and(|v| v == "1" || v == "true" || v == "True")
}

/// Every value of a repeated query parameter (`changes=…&changes=…`).
pub fn url_all(q: &str, key: &str) -> Vec<String> {
    form_urlencoded::parse(q.as_bytes())
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .collect()
}

/// A query string's `key=value` pairs, percent-decoded; of a repeated key the first, as
/// Go's `FormValue` in dockerd takes it (docker-py sends `dockerfile` twice for a
/// Dockerfile outside the context: its name in the context, then its text).
pub fn url_pairs(q: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    // (form_urlencoded: `+` is a space, bad escapes stay as they are, invalid UTF-8 is
    // replaced; no input makes it fail.)
    for (k, v) in form_urlencoded::parse(q.as_bytes()) {
        out.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    out
}

/// How much of a refused body is read past the bound before the connection is dropped.
const DRAIN: u64 = 256 << 20;

/// Write a request body (an archive) to a temporary file under the data root. A body
/// larger than daemon.json's `archive-max-size` (plus what compression can add to
/// incompressible data) is refused with 413, and nothing is kept.
pub async fn spool(d: &State, body: Body) -> Result<std::path::PathBuf, ApiError> {
    use tokio::io::AsyncWriteExt;
    let dir = d.data_root.join("tmp");
    tokio::fs::create_dir_all(&dir).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{}: {e}", dir.display()),
        )
    })?;
    let path = dir.join(format!("upload-{}", crate::images::unique()));
    let mut f = tokio::fs::File::create(&path).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{}: {e}", path.display()),
        )
    })?;
    let limit = d.archive_limits.max_bytes;
    let cap = limit.saturating_add(limit / 64).saturating_add(1 << 20);
    let mut s = body.into_data_stream();
    let mut n = 0u64;
    let res = async {
        while let Some(chunk) = s.next().await {
            let chunk = chunk.map_err(|e| ApiError::bad_request(format!("request body: {e}")))?;
            n += chunk.len() as u64;
            if n > cap {
                // Read (and drop) a bounded rest, so that a client a little over the bound
                // gets the reason rather than a broken pipe.
                let mut rest = 0u64;
                while rest < DRAIN {
                    match s.next().await {
                        Some(Ok(c)) => rest += c.len() as u64,
                        _ => break,
                    }
                }
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("archive is larger than archive-max-size ({limit} bytes, daemon.json)"),
                ));
            }
            f.write_all(&chunk).await.map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("{}: {e}", path.display()),
                )
            })?;
        }
        f.flush().await.map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{}: {e}", path.display()),
            )
        })
    }
    .await;
    if let Err(e) = res {
        drop(f);
        let _ = tokio::fs::remove_file(&path).await;
        return Err(e);
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries() {
        let q = url_pairs("repo=127.0.0.1%3A5000%2Fx&tag=v1&force=1");
        assert_eq!(q["repo"], "127.0.0.1:5000/x");
        assert_eq!(q["tag"], "v1");
        assert!(is_true(&q, "force"));
        assert_eq!(url_pairs("k=a%2Fb+c%zz")["k"], "a/b c%zz");
        // Escapes next to multi-byte characters, cut escapes, bad UTF-8: no panic.
        for q in [
            "since=1.%C3%A9%C3%A9",
            "a=%é%",
            "a=%",
            "a=%4",
            "%=%%",
            "x=%FF%FE",
            "é=é&=&&",
        ] {
            let _ = url_pairs(q);
            let _ = url_all(q, "a");
        }
        assert_eq!(url_pairs("a=%C3%A9")["a"], "é");
        assert_eq!(url_all("names=a&x=1&names=b%3A1", "names"), ["a", "b:1"]);
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Body {
        #[serde(rename = "HostConfig", default)]
        host: Option<Host>,
    }
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Host {
        #[serde(rename = "Memory")]
        memory: Option<i64>,
    }

    #[test]
    fn bad_bodies_name_the_field() {
        let err = |b: &str| decode::<Body>(b.as_bytes()).unwrap_err().message;
        assert!(err("{x").starts_with("invalid JSON"));
        assert!(err("[1]").contains("want an object"));
        let m = err(r#"{"HostConfig": {"Memory": "lots"}}"#);
        assert!(m.starts_with("invalid HostConfig.Memory:"), "{m}");
        assert!(decode::<Body>(b"").is_ok());
    }
}
