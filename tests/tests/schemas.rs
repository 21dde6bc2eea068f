//! berth-runtime's JSON output validated against the OCI runtime spec's own schemas
//! (`tests/schemas/oci-runtime-spec`): `state` in every status, `features`, `spec`.

use std::process::Command;

use berth_tests::*;

#[test]
fn validator_rejects_bad_documents() {
    // The check can fail: a state with an unknown status is refused.
    let o = run_with_input(
        Command::new("python3")
            .arg(schema_dir().join("validate.py"))
            .arg(schema_dir().join("oci-runtime-spec"))
            .arg("state-schema.json"),
        br#"{"ociVersion":"1.0.2","id":"x","status":"weird","bundle":"/b"}"#,
    );
    assert!(!o.status.success());
}

#[test]
fn state_in_every_status_matches_the_schema() {
    if !need_root("state_in_every_status_matches_the_schema") {
        return;
    }
    let b = Bundle::new(&["sleep", "1000"]);
    let c = Ctr::new(Runtime::Berth, "schema");
    assert!(c.create(&b).success());
    let state = |c: &Ctr| text(&c.verb("state", &[], &[]).stdout);
    validate_schema("state-schema.json", &state(&c));
    ok(&c.verb("start", &[], &[]));
    validate_schema("state-schema.json", &state(&c));
    ok(&c.verb("pause", &[], &[]));
    // "paused" is runc's extension; the schema knows creating/created/running/stopped.
    let paused = state(&c).replace("\"paused\"", "\"running\"");
    validate_schema("state-schema.json", &paused);
    ok(&c.verb("resume", &[], &[]));
    ok(&c.verb("kill", &[], &["KILL"]));
    c.wait_status("stopped");
    validate_schema("state-schema.json", &state(&c));
    // list --format json is an array of the same objects.
    let list: serde_json::Value =
        serde_json::from_str(&ok(&c.raw(&["list", "--format", "json"]))).unwrap();
    for s in list.as_array().unwrap() {
        validate_schema("state-schema.json", &s.to_string());
    }
}

#[test]
fn features_and_spec_match_their_schemas() {
    let rt = berth_runtime();
    let f = Command::new(&rt).arg("features").output().unwrap();
    validate_schema("features-schema.json", &ok(&f));
    for rootless in [false, true] {
        let d = TempDir::new("schema-spec");
        let mut cmd = Command::new(&rt);
        cmd.args(["spec", "--bundle"]).arg(d.path());
        if rootless {
            cmd.arg("--rootless");
        }
        ok(&cmd.output().unwrap());
        validate_schema(
            "config-schema.json",
            &std::fs::read_to_string(d.path().join("config.json")).unwrap(),
        );
    }
    // The configs the tests themselves use are valid too.
    validate_schema("config-schema.json", &base_config(&["true"]).to_string());
}
