//! The content store: blobs addressed by digest under `ROOT/content/blobs/sha256/<hex>`,
//! written through resumable ingests under `ROOT/content/ingest/<sha256 of ref>/`.
//!
//! An ingest is a file that only grows; a writer that went away (a broken download, a killed
//! daemon) resumes at [`Ingest::offset`]. [`Ingest::commit`] checks the size and the sha256
//! of everything written against what the writer expected, fsyncs, and renames the data into
//! place, so a blob is either complete and verified or absent. Ingests are collected by the
//! garbage collector unless a live lease holds them.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::Error;

/// `sha256:<64 lower-case hex>`, or an error naming the string.
pub fn parse_digest(d: &str) -> Result<&str, Error> {
    let Some(hex) = d.strip_prefix("sha256:") else {
        return Err(Error::BadDigest(d.to_string()));
    };
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(Error::BadDigest(d.to_string()));
    }
    Ok(hex)
}

pub fn sha256_hex(data: &[u8]) -> String {
    format!("{:x}", Sha256::digest(data))
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |err| Error::Io {
        what,
        path: path.display().to_string(),
        err,
    }
}

#[derive(Clone, Debug)]
pub struct ContentStore {
    root: PathBuf,
}

/// A blob's digest and size.
#[derive(Clone, Debug, PartialEq)]
pub struct BlobInfo {
    pub digest: String,
    pub size: u64,
}

/// An ingest in progress.
#[derive(Clone, Debug, PartialEq)]
pub struct IngestStatus {
    pub reference: String,
    pub offset: u64,
    pub lease: String,
    /// Seconds since the epoch of the last write.
    pub updated: u64,
}

impl ContentStore {
    pub fn open(root: &Path) -> Result<ContentStore, Error> {
        let s = ContentStore {
            root: root.to_path_buf(),
        };
        for d in [s.blobs(), s.ingests_dir()] {
            fs::create_dir_all(&d).map_err(io("create directory", &d))?;
        }
        Ok(s)
    }

    fn blobs(&self) -> PathBuf {
        self.root.join("blobs/sha256")
    }

    fn ingests_dir(&self) -> PathBuf {
        self.root.join("ingest")
    }

    fn ingest_dir(&self, reference: &str) -> PathBuf {
        self.ingests_dir().join(sha256_hex(reference.as_bytes()))
    }

    /// Where the blob lives (whether or not it exists).
    pub fn path(&self, digest: &str) -> Result<PathBuf, Error> {
        Ok(self.blobs().join(parse_digest(digest)?))
    }

    pub fn info(&self, digest: &str) -> Result<Option<BlobInfo>, Error> {
        let p = self.path(digest)?;
        match fs::metadata(&p) {
            Ok(m) => Ok(Some(BlobInfo {
                digest: digest.to_string(),
                size: m.len(),
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("stat blob", &p)(e)),
        }
    }

    /// Read a whole (small) blob: manifests, indexes, configs.
    pub fn read(&self, digest: &str) -> Result<Vec<u8>, Error> {
        let p = self.path(digest)?;
        fs::read(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::ContentNotFound(digest.to_string())
            } else {
                io("read blob", &p)(e)
            }
        })
    }

    pub fn open_blob(&self, digest: &str) -> Result<File, Error> {
        let p = self.path(digest)?;
        File::open(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::ContentNotFound(digest.to_string())
            } else {
                io("open blob", &p)(e)
            }
        })
    }

    pub fn list(&self) -> Result<Vec<BlobInfo>, Error> {
        let dir = self.blobs();
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(io("list", &dir))? {
            let e = e.map_err(io("list", &dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.len() != 64 {
                continue;
            }
            let size = e.metadata().map(|m| m.len()).unwrap_or(0);
            out.push(BlobInfo {
                digest: format!("sha256:{name}"),
                size,
            });
        }
        Ok(out)
    }

    pub fn delete(&self, digest: &str) -> Result<bool, Error> {
        let p = self.path(digest)?;
        match fs::remove_file(&p) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io("remove blob", &p)(e)),
        }
    }

    /// Write a small blob in one go (verified like any ingest).
    pub fn put(&self, data: &[u8]) -> Result<String, Error> {
        let digest = format!("sha256:{}", sha256_hex(data));
        if self.info(&digest)?.is_some() {
            return Ok(digest);
        }
        let mut w = self.ingest(&format!("put-{digest}"), "")?;
        w.reset()?;
        w.write(data)?;
        w.commit(&digest, Some(data.len() as u64))?;
        Ok(digest)
    }

    /// Open (or resume) the ingest for `reference`. `lease` is recorded with it.
    pub fn ingest(&self, reference: &str, lease: &str) -> Result<Ingest, Error> {
        if reference.is_empty() {
            return Err(Error::InvalidArgument("ingest reference is empty".into()));
        }
        let dir = self.ingest_dir(reference);
        fs::create_dir_all(&dir).map_err(io("create ingest", &dir))?;
        fs::write(dir.join("ref"), reference).map_err(io("write ingest ref", &dir))?;
        fs::write(dir.join("lease"), lease).map_err(io("write ingest lease", &dir))?;
        let data = dir.join("data");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&data)
            .map_err(io("open ingest", &data))?;
        // Resuming: the digest covers what is already there.
        let mut hash = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut offset = 0u64;
        loop {
            let n = file.read(&mut buf).map_err(io("read ingest", &data))?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            offset += n as u64;
        }
        Ok(Ingest {
            dir,
            data,
            file,
            hash,
            offset,
        })
    }

    pub fn ingests(&self) -> Result<Vec<IngestStatus>, Error> {
        let dir = self.ingests_dir();
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(io("list", &dir))? {
            let e = e.map_err(io("list", &dir))?;
            let d = e.path();
            let reference = fs::read_to_string(d.join("ref")).unwrap_or_default();
            let lease = fs::read_to_string(d.join("lease")).unwrap_or_default();
            let md = fs::metadata(d.join("data")).or_else(|_| fs::metadata(&d));
            let (offset, updated) = md
                .map(|m| {
                    let t = m
                        .modified()
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map(|d| d.as_secs())
                        .unwrap_or(0);
                    (if m.is_file() { m.len() } else { 0 }, t)
                })
                .unwrap_or((0, 0));
            out.push(IngestStatus {
                reference,
                offset,
                lease,
                updated,
            });
        }
        Ok(out)
    }

    /// Drop an ingest and its data. Missing is fine.
    pub fn abort(&self, reference: &str) -> Result<(), Error> {
        let dir = self.ingest_dir(reference);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("remove ingest", &dir)(e)),
        }
    }

    /// Remove ingest directories whose reference file is missing (a create that died).
    pub fn abort_by_dir_name(&self, name: &str) {
        let _ = fs::remove_dir_all(self.ingests_dir().join(name));
    }
}

pub struct Ingest {
    dir: PathBuf,
    data: PathBuf,
    file: File,
    hash: Sha256,
    offset: u64,
}

impl Ingest {
    /// Bytes written so far: a resuming writer continues here.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Start over (the writer cannot resume where the ingest stands).
    pub fn reset(&mut self) -> Result<(), Error> {
        self.file
            .set_len(0)
            .map_err(io("truncate ingest", &self.data))?;
        self.file
            .seek(SeekFrom::Start(0))
            .map_err(io("seek ingest", &self.data))?;
        self.hash = Sha256::new();
        self.offset = 0;
        Ok(())
    }

    pub fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        self.file
            .write_all(data)
            .map_err(io("write ingest", &self.data))?;
        self.hash.update(data);
        self.offset += data.len() as u64;
        Ok(())
    }

    /// Verify and move into the store. On a mismatch the ingest is removed (its data is
    /// wrong, resuming it cannot help) and the error names both digests.
    pub fn commit(self, expected: &str, size: Option<u64>) -> Result<BlobInfo, Error> {
        let hex = parse_digest(expected)?.to_string();
        let actual = format!("sha256:{:x}", self.hash.clone().finalize());
        let wrong = if let Some(s) = size.filter(|s| *s != self.offset) {
            Some(Error::SizeMismatch {
                digest: expected.to_string(),
                expected: s,
                actual: self.offset,
            })
        } else if actual != expected {
            Some(Error::DigestMismatch {
                expected: expected.to_string(),
                actual,
            })
        } else {
            None
        };
        if let Some(e) = wrong {
            let _ = fs::remove_dir_all(&self.dir);
            return Err(e);
        }
        self.file
            .sync_all()
            .map_err(io("fsync ingest", &self.data))?;
        let blobs = self
            .dir
            .parent()
            .and_then(Path::parent)
            .expect("ingest dir is ROOT/ingest/<x>")
            .join("blobs/sha256");
        let target = blobs.join(&hex);
        fs::rename(&self.data, &target).map_err(io("commit blob", &target))?;
        if let Ok(d) = File::open(&blobs) {
            let _ = d.sync_all();
        }
        let _ = fs::remove_dir_all(&self.dir);
        Ok(BlobInfo {
            digest: expected.to_string(),
            size: self.offset,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("berth-content-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn ingest_resumes_verifies_and_commits() {
        let d = tmp("a");
        let s = ContentStore::open(&d).unwrap();
        let data = b"hello, layers".to_vec();
        let digest = format!("sha256:{}", sha256_hex(&data));
        let mut w = s.ingest("ref1", "lease1").unwrap();
        w.write(&data[..5]).unwrap();
        drop(w); // the writer goes away
        let mut w = s.ingest("ref1", "lease1").unwrap();
        assert_eq!(w.offset(), 5);
        assert_eq!(s.ingests().unwrap()[0].lease, "lease1");
        w.write(&data[5..]).unwrap();
        let info = w.commit(&digest, Some(data.len() as u64)).unwrap();
        assert_eq!(info.size, data.len() as u64);
        assert_eq!(s.read(&digest).unwrap(), data);
        assert!(s.ingests().unwrap().is_empty());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn wrong_digest_or_size_keeps_nothing() {
        let d = tmp("b");
        let s = ContentStore::open(&d).unwrap();
        let claimed = format!("sha256:{}", sha256_hex(b"what the registry said"));
        let mut w = s.ingest("ref2", "").unwrap();
        w.write(b"what it sent").unwrap();
        let e = w.commit(&claimed, None).unwrap_err();
        assert!(matches!(e, Error::DigestMismatch { .. }), "{e}");
        assert!(e.to_string().contains(&claimed));
        assert!(s.info(&claimed).unwrap().is_none());
        assert!(s.ingests().unwrap().is_empty());
        let mut w = s.ingest("ref3", "").unwrap();
        w.write(b"abc").unwrap();
        let e = w
            .commit(&format!("sha256:{}", sha256_hex(b"abc")), Some(4))
            .unwrap_err();
        assert!(matches!(e, Error::SizeMismatch { .. }), "{e}");
        assert!(s.list().unwrap().is_empty());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn digests_are_checked() {
        assert!(parse_digest("sha256:abc").is_err());
        assert!(parse_digest("md5:0000").is_err());
        assert!(parse_digest(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(parse_digest(&format!("sha256:{}", "a".repeat(64))).is_ok());
    }
}
