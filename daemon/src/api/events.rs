//! `GET /events`: the event bus ([`crate::events`]) streamed, filtered, from `since` to
//! `until`.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{RawQuery, State as AxState};
use axum::http::header;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::Value;

use super::url_pairs;
use super::{ApiError, State};

pub fn routes() -> Router<State> {
    Router::new().route("/events", get(events))
}

/// A Docker timestamp: seconds[.nanos] since the epoch, or RFC 3339.
fn when(s: &str) -> Option<u128> {
    if let Some((secs, frac)) = s.split_once('.') {
        // Digits only (a byte slice of anything else could split a character).
        if frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let ns = format!("{:0<9}", &frac[..frac.len().min(9)]);
        let secs = secs.parse::<u128>().ok()?;
        return secs
            .checked_mul(1_000_000_000)?
            .checked_add(ns.parse().ok()?);
    }
    if let Ok(secs) = s.parse::<u128>() {
        return secs.checked_mul(1_000_000_000);
    }
    let t = crate::clock::unix_time(s);
    (t > 0).then_some(t as u128 * 1_000_000_000)
}

/// Docker's event filters: type, event/action, container, image, volume, label, name.
fn matches(e: &Value, filters: &super::Filters) -> bool {
    let get = |k: &str| filters.get(k);
    let kind = e["Type"].as_str().unwrap_or("");
    let id = e["Actor"]["ID"].as_str().unwrap_or("");
    let attrs = &e["Actor"]["Attributes"];
    let name = attrs["name"].as_str().unwrap_or("");
    let one_of = |want: Vec<String>, ok: &dyn Fn(&str) -> bool| {
        want.is_empty() || want.iter().any(|w| ok(w))
    };
    one_of(get("type"), &|w| w == kind)
        && one_of(get("event"), &|w| Some(w) == e["Action"].as_str())
        && one_of(get("container"), &|w| {
            kind == "container" && (w == name || id.starts_with(w))
        })
        && one_of(get("image"), &|w| {
            attrs["image"].as_str() == Some(w)
                || (kind == "image" && (id.starts_with(w) || name == w))
        })
        && one_of(get("volume"), &|w| kind == "volume" && id == w)
        && one_of(get("label"), &|w| match w.split_once('=') {
            Some((k, v)) => attrs[k].as_str() == Some(v),
            None => !attrs[w].is_null(),
        })
}

async fn events(AxState(d): AxState<State>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let query = q.as_deref().map(url_pairs).unwrap_or_default();
    let since = match query.get("since").filter(|s| !s.is_empty()) {
        Some(s) => {
            Some(when(s).ok_or_else(|| ApiError::bad_request(format!("invalid since: {s}")))?)
        }
        None => None,
    };
    let until = match query.get("until").filter(|s| !s.is_empty()) {
        Some(s) => {
            Some(when(s).ok_or_else(|| ApiError::bad_request(format!("invalid until: {s}")))?)
        }
        None => None,
    };
    let filters = super::Filters::parse(&query)?;
    let mut rx = d.events.subscribe();
    let past: Vec<Value> = match since {
        Some(s) => d
            .events
            .recent
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["timeNano"].as_u64().unwrap_or(0) as u128 >= s)
            .cloned()
            .collect(),
        None => Vec::new(),
    };
    let (tx, out) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(16);
    tokio::spawn(async move {
        let in_range = |e: &Value| {
            let t = e["timeNano"].as_u64().unwrap_or(0) as u128;
            until.is_none_or(|u| t <= u)
        };
        for e in past.iter().filter(|e| in_range(e) && matches(e, &filters)) {
            if tx.send(Ok(format!("{e}\n"))).await.is_err() {
                return;
            }
        }
        let now = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        };
        loop {
            let wait = match until {
                Some(u) if u <= now() => return,
                Some(u) => Duration::from_nanos((u - now()) as u64),
                None => Duration::from_secs(3600),
            };
            let e = match tokio::time::timeout(wait, rx.recv()).await {
                Ok(Ok(e)) => e,
                Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => continue,
                Ok(Err(_)) => return,
                Err(_) => continue,
            };
            if in_range(&e) && matches(&e, &filters) && tx.send(Ok(format!("{e}\n"))).await.is_err()
            {
                return;
            }
        }
    });
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(
            tokio_stream::wrappers::ReceiverStream::new(out),
        ))
        .expect("response"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_filters() {
        assert_eq!(when("10"), Some(10_000_000_000));
        assert_eq!(when("10.5"), Some(10_500_000_000));
        assert_eq!(when("10.1234567891"), Some(10_123_456_789));
        // What once took berthd down, and its neighbours: refused, no panic.
        for bad in [
            "1.\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}",
            "1.",
            ".5",
            "1.5x",
            "99999999999999999999999999999999999999",
            "1.\u{e9}",
        ] {
            assert_eq!(when(bad), None, "{bad:?}");
        }
        let e = serde_json::json!({"Type": "container", "Action": "start", "Actor": {"ID": "abc123", "Attributes": {"name": "web", "image": "busybox", "tier": "front"}}});
        let f = |s: &str| super::super::Filters::from_json(s).unwrap();
        assert!(matches(
            &e,
            &f(r#"{"type":["container"],"event":["start"]}"#)
        ));
        assert!(matches(&e, &f(r#"{"container":{"web":true}}"#)));
        assert!(matches(&e, &f(r#"{"label":["tier=front"]}"#)));
        assert!(!matches(&e, &f(r#"{"event":["die"]}"#)));
        assert!(!matches(&e, &f(r#"{"type":["image"]}"#)));
    }
}
