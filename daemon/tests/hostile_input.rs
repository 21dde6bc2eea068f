//! Hostile input to berthd's parsers: a seed corpus of every bad input we know of
//! (`tests/corpus/<kind>/…`) and bounded randomized tests (proptest, a fixed number of
//! cases so CI time is fixed) over query strings, sizes, glob patterns, image references,
//! Dockerfiles, manifests, image configs, tar streams and log files. Each asserts what a
//! client may rely on: no panic, and a refusal is an error with a message.
//!
//! The same inputs against a live berthd (status codes, the daemon still answering) are in
//! `tests/tests/api/hostile.rs`.

use std::path::{Path, PathBuf};

use berth_daemon::api::request::{url_all, url_pairs, Filters};
use berth_daemon::build::{dockerfile, instructions, pattern};
use berth_daemon::containers::logfile;
use berth_daemon::reference::Reference;
use berth_fstree::layer;
use berth_manager::images::manifest;
use proptest::prelude::*;

fn corpus(kind: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(kind);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no corpus in {}", dir.display());
    out
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// What berthd does with a query string: pairs, repeated keys, filters, times.
fn query(q: &str) {
    let pairs = url_pairs(q);
    let _ = url_all(q, "a");
    if let Err(e) = Filters::parse(&pairs) {
        assert!(!e.message.is_empty() && e.status.is_client_error());
    }
    for k in ["since", "until"] {
        if let Some(v) = pairs.get(k) {
            let _ = berth_daemon::clock::parse_since(v);
        }
    }
}

fn reference(s: &str) {
    match Reference::parse(s) {
        Ok(r) => {
            // What it prints parses back to the same reference.
            let again = Reference::parse(&r.to_string()).expect("a printed reference parses");
            assert_eq!(again.to_string(), r.to_string());
        }
        Err(e) => assert!(!e.to_string().is_empty(), "{s:?}: an empty message"),
    }
}

fn dockerfile_text(text: &str) {
    match dockerfile::parse(text) {
        Ok(_) => {}
        Err(e) => assert!(!e.is_empty()),
    }
    // Each line as a `--change` / commit instruction.
    for line in text.lines() {
        let mut rc = manifest::RunConfig::default();
        if let Err(e) = instructions::apply(&mut rc, line) {
            assert!(!e.is_empty());
        }
    }
}

fn manifest_bytes(b: &[u8]) {
    let digest = format!("sha256:{}", "0".repeat(64));
    for r in [
        manifest::parse_manifest(b, &digest).map(|_| ()),
        manifest::parse_index(b, &digest).map(|_| ()),
    ] {
        if let Err(e) = r {
            assert!(!e.to_string().is_empty());
        }
    }
    let _ = serde_json::from_slice::<manifest::ImageConfig>(b);
}

/// A fresh directory with a sentinel beside the extraction target, so an entry that
/// escapes the target is seen.
struct Sandbox(PathBuf);

impl Sandbox {
    fn new() -> Sandbox {
        static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "berth-hostile-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        std::fs::create_dir_all(p.join("target")).unwrap();
        Sandbox(p)
    }

    fn target(&self) -> PathBuf {
        self.0.join("target")
    }

    /// Only the target is beside it; nothing named `escaped*` anywhere outside.
    fn check_contained(&self, what: &str) {
        let names: Vec<_> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["target"], "{what}: something escaped the target");
        for outside in ["/escaped-abs", "/tmp/escaped-abs-sym"] {
            assert!(
                !Path::new(outside).exists(),
                "{what}: {outside} was written"
            );
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tar_stream(b: &[u8], what: &str) {
    let limits = layer::Limits {
        max_bytes: 16 << 20,
        max_entries: 1000,
    };
    if let Err(e) = layer::measure(b, &limits) {
        assert!(!e.to_string().is_empty());
    }
    for whiteouts in [false, true] {
        let s = Sandbox::new();
        let r = if whiteouts {
            layer::apply(b, &s.target(), &limits)
        } else {
            layer::extract(b, &s.target(), &limits)
        };
        if let Err(e) = r {
            assert!(!e.to_string().is_empty());
        }
        s.check_contained(what);
    }
}

fn log_bytes(b: &[u8]) {
    for f in [logfile::Format::Json, logfile::Format::Local] {
        let (_records, used) = logfile::parse(f, b);
        assert!(used <= b.len());
    }
}

#[test]
fn corpus_query_strings() {
    for (name, q) in corpus("query") {
        let q = lossy(&q);
        query(&q);
        if name.starts_with("events-since") || name.starts_with("since") {
            let v = url_pairs(&q).get("since").cloned().unwrap_or_default();
            assert_eq!(berth_daemon::clock::parse_since(&v), None, "{name}: {v:?}");
        }
    }
}

#[test]
fn corpus_sizes_are_refused() {
    for (name, s) in corpus("size") {
        let s = lossy(&s);
        assert_eq!(berth_daemon::config::parse_size(&s), None, "{name}: {s:?}");
    }
}

#[test]
fn corpus_patterns_finish() {
    let name = "a".repeat(100 << 10);
    for (_, p) in corpus("pattern") {
        let p = lossy(&p);
        assert!(!pattern::segment_matches(&p, &name));
        let _ = pattern::path_matches(&p, &format!("x/{name}"));
        let _ = pattern::Ignore::parse(&p).excludes(&name);
    }
}

#[test]
fn corpus_references_are_refused() {
    for (name, r) in corpus("reference") {
        let r = lossy(&r);
        assert!(Reference::parse(&r).is_err(), "{name}: {r:?} was accepted");
    }
}

#[test]
fn corpus_dockerfiles() {
    for (_, d) in corpus("dockerfile") {
        dockerfile_text(&lossy(&d));
    }
}

#[test]
fn corpus_manifests() {
    for (_, m) in corpus("manifest") {
        manifest_bytes(&m);
    }
}

#[test]
fn corpus_tar_streams_stay_contained() {
    for (name, t) in corpus("tar") {
        tar_stream(&t, &name);
    }
}

#[test]
fn corpus_logs() {
    for (_, l) in corpus("log") {
        log_bytes(&l);
    }
}

/// Bytes that look like the input: pieces of a vocabulary, escapes and arbitrary text.
fn looks_like(words: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(words).prop_map(String::from),
            2 => "%[0-9A-Fa-f]{0,2}",
            1 => any::<String>(),
            1 => "[\\PC]{0,8}",
        ],
        0..24,
    )
    .prop_map(|v| v.concat())
}

/// A JSON value shaped like an Engine API or OCI document.
fn json_like(keys: &'static [&'static str]) -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::json!(f)),
        looks_like(keys).prop_map(serde_json::Value::from),
        Just(serde_json::json!(format!("sha256:{}", "a".repeat(64)))),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::btree_map(prop::sample::select(keys), inner, 0..8).prop_map(|m| {
                serde_json::Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

const QUERY_WORDS: &[&str] = &[
    "=", "&", "+", "since", "until", "filters", "tail", "all", "1", "0", "-1", ".", "%C3%A9", "%",
    "{", "}", "\"", "label", "[", "]", ":", "true",
];
const REF_WORDS: &[&str] = &[
    "busybox",
    "localhost",
    ":",
    "5000",
    "/",
    "@",
    "sha256",
    "library",
    "latest",
    ".",
    "-",
    "_",
    "__",
    "a",
    "0",
    "docker.io",
    "[::1]",
    "A",
];
const DOCKERFILE_WORDS: &[&str] = &[
    "FROM ",
    "RUN ",
    "CMD ",
    "ENV ",
    "ARG ",
    "COPY ",
    "ADD ",
    "LABEL ",
    "EXPOSE ",
    "WORKDIR ",
    "USER ",
    "VOLUME ",
    "ONBUILD ",
    "HEALTHCHECK ",
    "SHELL ",
    "STOPSIGNAL ",
    "ENTRYPOINT ",
    "MAINTAINER ",
    "AS ",
    "--from=",
    "--chown=",
    "--interval=",
    "--platform=",
    "${",
    "}",
    "$",
    ":-",
    ":+",
    "[",
    "]",
    "\"",
    "\\",
    "\n",
    "\\\n",
    "# escape=`\n",
    "<<EOF\n",
    "EOF\n",
    "=",
    " ",
    "busybox",
    "a",
    "1",
];
const JSON_KEYS: &[&str] = &[
    "schemaVersion",
    "mediaType",
    "config",
    "layers",
    "manifests",
    "digest",
    "size",
    "platform",
    "architecture",
    "os",
    "variant",
    "urls",
    "annotations",
    "rootfs",
    "diff_ids",
    "type",
    "history",
    "created",
    "Env",
    "Cmd",
    "Entrypoint",
    "ExposedPorts",
    "Volumes",
    "Labels",
    "User",
    "WorkingDir",
    "Healthcheck",
    "subject",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_query_strings(q in looks_like(QUERY_WORDS)) {
        query(&q);
    }

    #[test]
    fn random_sizes(s in "[0-9]{0,25}(\\.[0-9]{0,5})?[kmgtbKMGTB]{0,2}") {
        let _ = berth_daemon::config::parse_size(&s);
    }

    #[test]
    fn random_patterns(p in "[a*?\\[\\]\\\\/!^-]{0,40}", n in "[ab/]{0,200}") {
        let _ = pattern::segment_matches(&p, &n);
        let _ = pattern::path_matches(&p, &n);
        let _ = pattern::Ignore::parse(&p).skips(&n, false);
    }

    #[test]
    fn random_references(s in looks_like(REF_WORDS)) {
        reference(&s);
    }

    #[test]
    fn random_dockerfiles(text in looks_like(DOCKERFILE_WORDS)) {
        dockerfile_text(&text);
    }

    #[test]
    fn random_manifests(v in json_like(JSON_KEYS)) {
        manifest_bytes(v.to_string().as_bytes());
    }

    #[test]
    fn random_log_bytes(b in prop::collection::vec(any::<u8>(), 0..2048)) {
        log_bytes(&b);
    }
}

/// A small valid tar with names, links and sizes from the strategy, then mutated.
fn tar_of(entries: &[(u8, String, String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (kind, name, link, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        let t = match kind % 5 {
            0 => tar::EntryType::Regular,
            1 => tar::EntryType::Directory,
            2 => tar::EntryType::Symlink,
            3 => tar::EntryType::Link,
            _ => tar::EntryType::Fifo,
        };
        h.set_entry_type(t);
        let data: &[u8] = if t == tar::EntryType::Regular {
            data
        } else {
            &[]
        };
        h.set_size(data.len() as u64);
        // Raw names: the tar crate refuses `..` through its checked setters.
        let raw = name.as_bytes();
        let n = raw.len().min(99);
        h.as_old_mut().name[..n].copy_from_slice(&raw[..n]);
        let l = link.as_bytes();
        let n = l.len().min(99);
        h.as_old_mut().linkname[..n].copy_from_slice(&l[..n]);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

const TAR_NAMES: &[&str] = &[
    "..",
    "/",
    "a",
    "b",
    ".wh.",
    ".wh..wh..opq",
    "escaped",
    "tmp",
    "etc",
    "passwd",
    ".",
    "//",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_tar_streams_stay_contained(
        entries in prop::collection::vec(
            (
                any::<u8>(),
                looks_like(TAR_NAMES),
                looks_like(TAR_NAMES),
                prop::collection::vec(any::<u8>(), 0..600),
            ),
            0..8,
        ),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<Option<prop::sample::Index>>(),
    ) {
        let mut t = tar_of(&entries);
        for (i, v) in flips {
            if !t.is_empty() {
                let i = i.index(t.len());
                t[i] = v;
            }
        }
        if let (Some(c), false) = (cut, t.is_empty()) {
            t.truncate(c.index(t.len()));
        }
        tar_stream(&t, "random");
    }
}
