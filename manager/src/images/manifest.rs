//! OCI and Docker image manifests, indexes and configs: the types, the media types, choosing
//! a platform's manifest from an index, and the references a blob holds (for the collector).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::content::ContentStore;
use super::{Descriptor, Error};

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

pub fn is_manifest(media_type: &str) -> bool {
    media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST
}

pub fn is_layer(media_type: &str) -> bool {
    matches!(
        media_type,
        OCI_LAYER | OCI_LAYER_GZIP | OCI_LAYER_ZSTD | DOCKER_LAYER_GZIP
    ) || media_type == "application/vnd.docker.image.rootfs.diff.tar"
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct IndexEntry {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Index {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(
        rename = "mediaType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub media_type: String,
    pub manifests: Vec<IndexEntry>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(
        rename = "mediaType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub media_type: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct RootFs {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

/// The part of an image config that describes how to run it (`config` in the image JSON).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub working_dir: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stop_signal: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    /// Fields we do not interpret (ArgsEscaped, Domainname, …), kept as they came.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl From<&RunConfig> for crate::oci::ImageConfig {
    /// What the spec generator needs of an image's config.
    fn from(rc: &RunConfig) -> Self {
        crate::oci::ImageConfig {
            entrypoint: rc.entrypoint.clone().unwrap_or_default(),
            cmd: rc.cmd.clone().unwrap_or_default(),
            env: rc.env.clone().unwrap_or_default(),
            working_dir: rc.working_dir.clone(),
            user: rc.user.clone(),
            stop_signal: rc.stop_signal.clone(),
            volumes: rc
                .volumes
                .as_ref()
                .map(|v| v.keys().cloned().collect())
                .unwrap_or_default(),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct History {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created_by: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// An image config (OCI image spec `config.json`, Docker's image JSON).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub author: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<RunConfig>,
    #[serde(default)]
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
}

fn bad(digest: &str, reason: impl Into<String>) -> Error {
    Error::BadManifest {
        digest: digest.to_string(),
        reason: reason.into(),
    }
}

/// The media type a JSON blob says it has (its `mediaType`, or by shape).
pub fn sniff(bytes: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    if let Some(m) = v["mediaType"].as_str() {
        return m.to_string();
    }
    if v.get("manifests").is_some() {
        OCI_INDEX.into()
    } else if v.get("layers").is_some() {
        OCI_MANIFEST.into()
    } else {
        String::new()
    }
}

pub fn parse_manifest(bytes: &[u8], digest: &str) -> Result<Manifest, Error> {
    let m: Manifest = serde_json::from_slice(bytes).map_err(|e| bad(digest, e.to_string()))?;
    if m.schema_version != 2 {
        return Err(bad(
            digest,
            format!("schemaVersion {} is not supported", m.schema_version),
        ));
    }
    for l in &m.layers {
        super::content::parse_digest(&l.digest)?;
        if !is_layer(&l.media_type) {
            return Err(bad(
                digest,
                format!("layer {} has media type {:?}", l.digest, l.media_type),
            ));
        }
    }
    super::content::parse_digest(&m.config.digest)?;
    Ok(m)
}

pub fn parse_index(bytes: &[u8], digest: &str) -> Result<Index, Error> {
    let i: Index = serde_json::from_slice(bytes).map_err(|e| bad(digest, e.to_string()))?;
    if i.schema_version != 2 {
        return Err(bad(
            digest,
            format!("schemaVersion {} is not supported", i.schema_version),
        ));
    }
    Ok(i)
}

/// Is this index entry an attestation or other non-runnable artifact?
pub fn is_attestation(e: &IndexEntry) -> bool {
    e.annotations
        .get("vnd.docker.reference.type")
        .is_some_and(|t| t == "attestation-manifest")
        || e.platform
            .as_ref()
            .is_some_and(|p| p.os == "unknown" || p.architecture == "unknown")
}

/// Does an index entry's platform run on `want`?
pub fn platform_matches(have: &Platform, want: &Platform) -> bool {
    have.os == want.os
        && have.architecture == want.architecture
        && (want.variant.is_empty() || have.variant.is_empty() || have.variant == want.variant)
}

/// Pick the entry of an index for `want`, skipping attestations.
pub fn choose<'a>(index: &'a Index, want: &Platform) -> Option<&'a IndexEntry> {
    index.manifests.iter().find(|e| {
        !is_attestation(e)
            && is_manifest(if e.media_type.is_empty() {
                OCI_MANIFEST
            } else {
                &e.media_type
            })
            && e.platform
                .as_ref()
                .map(|p| platform_matches(p, want))
                .unwrap_or(true)
    })
}

/// Follow `target` (a manifest, or an index down to the platform's manifest) in the store.
pub fn select(
    content: &ContentStore,
    target: &Descriptor,
    want: &Platform,
    image: &str,
) -> Result<Manifest, Error> {
    let mut desc = target.clone();
    for _ in 0..4 {
        let bytes = content.read(&desc.digest)?;
        let mt = if desc.media_type.is_empty() {
            sniff(&bytes)
        } else {
            desc.media_type.clone()
        };
        if is_manifest(&mt) {
            return parse_manifest(&bytes, &desc.digest);
        }
        if !is_index(&mt) {
            return Err(bad(
                &desc.digest,
                format!("media type {mt:?} is not an image"),
            ));
        }
        let index = parse_index(&bytes, &desc.digest)?;
        let e = choose(&index, want).ok_or_else(|| Error::NoPlatform {
            image: image.to_string(),
            platform: want.to_string(),
        })?;
        desc = Descriptor {
            media_type: e.media_type.clone(),
            digest: e.digest.clone(),
            size: e.size,
        };
    }
    Err(bad(&target.digest, "indexes nest too deep"))
}

/// What a blob refers to, for the garbage collector.
pub struct Refs {
    pub children: Vec<String>,
    /// Set for an image config: its layers' diff ids (their snapshots are kept).
    pub diff_ids: Option<Vec<String>>,
}

pub fn references(bytes: &[u8]) -> Refs {
    let v: serde_json::Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(_) => {
            return Refs {
                children: vec![],
                diff_ids: None,
            }
        }
    };
    let mut children = Vec::new();
    if let Some(ms) = v["manifests"].as_array() {
        children.extend(
            ms.iter()
                .filter_map(|m| m["digest"].as_str().map(String::from)),
        );
    }
    if let Some(d) = v["config"]["digest"].as_str() {
        children.push(d.to_string());
    }
    if let Some(ls) = v["layers"].as_array() {
        children.extend(
            ls.iter()
                .filter_map(|m| m["digest"].as_str().map(String::from)),
        );
    }
    let diff_ids = v["rootfs"]["diff_ids"].as_array().map(|a| {
        a.iter()
            .filter_map(|d| d.as_str().map(String::from))
            .collect()
    });
    Refs { children, diff_ids }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_manifests_are_named() {
        let d = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
        let cases: Vec<(&[u8], &str)> = vec![
            (b"not json", "expected"),
            (br#"{"schemaVersion": 1, "config": {"mediaType": "a", "digest": "x", "size": 1}, "layers": []}"#, "schemaVersion 1"),
            (
                br#"{"schemaVersion": 2, "config": {"mediaType": "a", "digest": "sha256:00", "size": 1}, "layers": []}"#,
                "invalid digest",
            ),
            (
                br#"{"schemaVersion": 2, "config": {"mediaType": "a", "digest": "sha256:1111111111111111111111111111111111111111111111111111111111111111", "size": 1},
                   "layers": [{"mediaType": "text/html", "digest": "sha256:1111111111111111111111111111111111111111111111111111111111111111", "size": 1}]}"#,
                "text/html",
            ),
        ];
        for (bytes, want) in cases {
            let e = parse_manifest(bytes, d).unwrap_err().to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
        assert!(parse_index(b"{}", d).is_err());
    }

    #[test]
    fn chooses_the_platform_and_skips_attestations() {
        let idx: Index = serde_json::from_value(serde_json::json!({
            "schemaVersion": 2,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": "sha256:a", "size": 1,
                 "platform": {"os": "unknown", "architecture": "unknown"},
                 "annotations": {"vnd.docker.reference.type": "attestation-manifest"}},
                {"mediaType": OCI_MANIFEST, "digest": "sha256:b", "size": 1,
                 "platform": {"os": "linux", "architecture": "s390x"}},
                {"mediaType": OCI_MANIFEST, "digest": "sha256:c", "size": 1,
                 "platform": {"os": "linux", "architecture": "amd64"}}
            ]
        }))
        .unwrap();
        let want = Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: String::new(),
        };
        assert_eq!(choose(&idx, &want).unwrap().digest, "sha256:c");
        let arm = Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: "v8".into(),
        };
        assert!(choose(&idx, &arm).is_none());
    }
}
