//! The rule for create bodies: every field of the Engine API's `ContainerConfig` and
//! `HostConfig` either takes effect or is refused with an error naming it. A field sent
//! with its zero value (what the docker CLI and docker-py send for options not given) asks
//! for nothing and passes; anything else not in the honoured lists below is refused.
//!
//! The lists are public so the schema-walk test (`tests/tests/api/options.rs`) can check
//! that every field of the v1.45 schema is one or the other.

use serde_json::Value;

use super::doc::{Config, HostConfig};
use super::{Error, Result};

/// `Config` fields berthd applies (or, for the Attach* fields, records for `start -a`).
pub const HONOURED_CONFIG: &[&str] = &[
    "AttachStderr",
    "AttachStdin",
    "AttachStdout",
    "Cmd",
    "Domainname",
    "Entrypoint",
    "Env",
    "ExposedPorts",
    "Healthcheck",
    "Hostname",
    "Image",
    "Labels",
    "MacAddress",
    "NetworkDisabled",
    "OpenStdin",
    "StdinOnce",
    "StopSignal",
    "StopTimeout",
    "Tty",
    "User",
    "Volumes",
    "WorkingDir",
];

/// `HostConfig` fields berthd applies. Some take only some values (Isolation "default",
/// UsernsMode "host", Runtime one berthd knows, VolumeDriver "local" for the volumes a
/// container makes): others are refused where the field is applied.
pub const HONOURED_HOST: &[&str] = &[
    "Annotations",
    "AutoRemove",
    "Binds",
    "BlkioDeviceReadBps",
    "BlkioDeviceReadIOps",
    "BlkioDeviceWriteBps",
    "BlkioDeviceWriteIOps",
    "BlkioWeight",
    "BlkioWeightDevice",
    "CapAdd",
    "CapDrop",
    "CgroupParent",
    "CgroupnsMode",
    "ConsoleSize",
    "ContainerIDFile",
    "CpuPeriod",
    "CpuQuota",
    "CpuShares",
    "CpusetCpus",
    "CpusetMems",
    "DeviceCgroupRules",
    "Devices",
    "Dns",
    "DnsOptions",
    "DnsSearch",
    "ExtraHosts",
    "GroupAdd",
    "Init",
    "IpcMode",
    "Isolation",
    "KernelMemoryTCP",
    "Links",
    "LogConfig",
    "MaskedPaths",
    "Memory",
    "MemoryReservation",
    "MemorySwap",
    "MemorySwappiness",
    "Mounts",
    "NanoCpus",
    "NetworkMode",
    "OomKillDisable",
    "OomScoreAdj",
    "PidMode",
    "PidsLimit",
    "PortBindings",
    "Privileged",
    "PublishAllPorts",
    "ReadonlyPaths",
    "ReadonlyRootfs",
    "RestartPolicy",
    "Runtime",
    "SecurityOpt",
    "ShmSize",
    "Sysctls",
    "Tmpfs",
    "UTSMode",
    "Ulimits",
    "UsernsMode",
    "VolumeDriver",
    "VolumesFrom",
];

/// Why a field is refused, where there is more to say than "not supported".
fn reason(field: &str) -> &'static str {
    match field {
        "ArgsEscaped" | "CpuCount" | "CpuPercent" | "IOMaximumBandwidth" | "IOMaximumIOps" => {
            " (a Windows-only field)"
        }
        "OnBuild" | "Shell" => " (it applies to image builds only)",
        "DeviceRequests" => " (no device drivers such as GPUs are available)",
        "StorageOpt" => " (the overlay snapshotter has no per-container size quota)",
        "Cgroup" => " (sharing another container's cgroup)",
        "CpuRealtimePeriod" | "CpuRealtimeRuntime" => " (real-time CPU scheduling)",
        _ => "",
    }
}

/// A value that asks for nothing: null, false, 0, "", [], {}, a list of zeros
/// (`ConsoleSize: [0, 0]`), or an object of such values (`LogConfig: {Type: "", Config: {}}`).
pub fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.iter().all(is_zero),
        Value::Object(o) => o.values().all(is_zero),
    }
}

/// Refuse any field of `cfg` or `host` that is set and not honoured, naming it.
pub fn refuse_unsupported(cfg: &Config, host: &HostConfig) -> Result<()> {
    let check = |section: &str, v: Value, honoured: &[&str]| -> Result<()> {
        for (k, v) in v.as_object().into_iter().flatten() {
            // The create body's NetworkingConfig rides along with Config (applied by
            // network::attach).
            if k == "NetworkingConfig" || honoured.contains(&k.as_str()) || is_zero(v) {
                continue;
            }
            return Err(Error::Invalid(format!(
                "{section}.{k} is not supported by Berth{}",
                reason(k)
            )));
        }
        Ok(())
    };
    check(
        "Config",
        serde_json::to_value(cfg).map_err(Error::internal)?,
        HONOURED_CONFIG,
    )?;
    check(
        "HostConfig",
        serde_json::to_value(host).map_err(Error::internal)?,
        HONOURED_HOST,
    )?;
    // Fields honoured for some values only.
    let rest = |k: &str| host.rest.get(k).and_then(Value::as_str).unwrap_or("");
    match rest("Isolation") {
        "" | "default" => {}
        i => {
            return Err(Error::Invalid(format!(
                "HostConfig.Isolation {i:?} is not supported by Berth (only \"default\")"
            )))
        }
    }
    match rest("UsernsMode") {
        "" | "host" => {}
        u => {
            return Err(Error::Invalid(format!(
                "HostConfig.UsernsMode {u:?} is not supported by Berth (user namespaces are not available; only \"host\")"
            )))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> (Config, HostConfig) {
        let b: super::super::CreateBody = serde_json::from_value(v).unwrap();
        (b.config, b.host_config)
    }

    #[test]
    fn zero_values_pass_and_set_fields_are_named() {
        let (c, h) = body(json!({"Image": "x", "OnBuild": null, "Shell": [],
            "HostConfig": {"ConsoleSize": [0, 0], "CpuCount": 0, "StorageOpt": {},
                "LogConfig": {"Type": "", "Config": {}}, "Isolation": "default"}}));
        refuse_unsupported(&c, &h).unwrap();
        let (c, h) = body(json!({"Image": "x", "HostConfig": {"StorageOpt": {"size": "1G"}}}));
        let e = refuse_unsupported(&c, &h).unwrap_err().to_string();
        assert!(e.contains("HostConfig.StorageOpt is not supported"), "{e}");
        let (c, h) = body(json!({"Image": "x", "Shell": ["sh"]}));
        let e = refuse_unsupported(&c, &h).unwrap_err().to_string();
        assert!(e.contains("Config.Shell"), "{e}");
        let (c, h) = body(json!({"Image": "x", "HostConfig": {"UsernsMode": "private"}}));
        assert!(refuse_unsupported(&c, &h).is_err());
    }
}
