//! Hostile config.json: `runc spec`'s output (runc 1.1, unmodified, in `fixtures/`) with
//! values replaced at random places, and random seccomp and device sections. berth-runtime
//! must refuse what it cannot honour with an error naming the field, never panic. A fixed
//! number of cases (proptest), so CI time is fixed.

use std::path::Path;

use berth_runtime::spec::parse_config;
use proptest::prelude::*;
use serde_json::Value;

fn runc_spec() -> Value {
    serde_json::from_str(include_str!("fixtures/runc-spec.json")).unwrap()
}

/// Every path (object keys and array indexes) in `v`.
fn paths(v: &Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                at.push(k.clone());
                paths(x, at, out);
                at.pop();
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                at.push(i.to_string());
                paths(x, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

fn set(v: &mut Value, path: &[String], new: Value) {
    let mut cur = v;
    for p in path {
        cur = match cur {
            Value::Object(m) => m.get_mut(p).unwrap(),
            Value::Array(a) => &mut a[p.parse::<usize>().unwrap()],
            _ => unreachable!("paths only walks containers"),
        };
    }
    *cur = new;
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        Just(Value::from(u64::MAX)),
        Just(Value::from(-1)),
        "[\\PC]{0,12}".prop_map(Value::from),
        prop::sample::select(vec![
            "/",
            "..",
            "../../etc",
            "/proc/self/exe",
            "",
            "SCMP_ACT_ERRNO",
            "SCMP_ARCH_X86",
            "bind",
            "rbind",
            "ro",
            "c",
            "b",
            "a",
            "rwm",
            "CAP_SYS_ADMIN",
            "CAP_NOPE",
            "pid",
            "network",
            "user",
            "cgroup",
            "time",
            "RLIMIT_NOFILE",
            "execve",
            "SCMP_CMP_EQ",
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "names",
                    "action",
                    "args",
                    "index",
                    "value",
                    "op",
                    "defaultAction",
                    "architectures",
                    "type",
                    "path",
                    "major",
                    "minor",
                    "allow",
                    "access",
                    "source",
                    "destination",
                    "options",
                    "limit",
                    "hard",
                    "soft",
                ]),
                inner,
                0..5,
            )
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

/// What the runtime does with a config before it forks anything.
fn check(v: &Value) {
    let text = v.to_string();
    let path = Path::new("/bundle/config.json");
    match parse_config(path, text.as_bytes()) {
        Ok(spec) => {
            if let Some(linux) = spec.linux() {
                if let Some(s) = linux.seccomp() {
                    if berth_runtime::seccomp::check(s).is_ok() {
                        let _ = berth_runtime::seccomp::compile(s, &mut |_| {});
                    }
                }
                if let Some(devs) = linux.resources().as_ref().and_then(|r| r.devices().clone()) {
                    let _ = berth_runtime::bpf_devices::compile(&devs);
                }
            }
        }
        Err(e) => {
            let m = e.to_string();
            assert!(m.contains("config.json"), "the error names the file: {m}");
        }
    }
}

#[test]
fn runc_spec_is_accepted() {
    let text = runc_spec().to_string();
    parse_config(Path::new("config.json"), text.as_bytes()).expect("runc spec's output");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn runc_spec_with_random_values(
        picks in prop::collection::vec((any::<prop::sample::Index>(), value()), 1..4),
    ) {
        let mut v = runc_spec();
        for (i, new) in picks {
            let mut all = Vec::new();
            paths(&v, &mut Vec::new(), &mut all);
            let p = i.get(&all).clone();
            set(&mut v, &p, new);
        }
        check(&v);
    }

    #[test]
    fn random_seccomp_and_devices(seccomp in value(), devices in value()) {
        let mut v = runc_spec();
        v["linux"]["seccomp"] = seccomp;
        v["linux"]["resources"]["devices"] = devices;
        check(&v);
    }
}
