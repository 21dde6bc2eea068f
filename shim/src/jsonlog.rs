//! The container's log file, in Docker's json-file format — one JSON object a line,
//! `{"log":"text\n","stream":"stdout","time":"2026-11-23T14:11:14.123456789Z"}` — or in
//! its `local` format: records framed by their length (4 bytes, big endian) before and
//! after, each a protobuf `LogEntry {source, time_nano, line, partial}` with the line
//! without its newline. Output is split at newlines; a line longer than [`MAX_LINE`] is
//! written in pieces without the newline, as Docker does. The file rotates at `max_size`
//! bytes, keeping `max_files` files (`log`, `log.1`, … oldest last; `log.N.gz` when rotated
//! files are compressed). Every line can also go to a forwarder (syslog, journald:
//! [`crate::logfwd`]); the file then is the local copy `docker logs` reads.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::logfwd::Forward;

/// Longest piece written as one entry (Docker's buffer size).
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Errors name the log file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("open log {path}")]
    Open {
        path: PathBuf,
        #[source]
        err: std::io::Error,
    },
    #[error("write log {path}")]
    Write {
        path: PathBuf,
        #[source]
        err: std::io::Error,
    },
    #[error("rotate log {path}")]
    Rotate {
        path: PathBuf,
        #[source]
        err: std::io::Error,
    },
}

/// The file's record format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    Json,
    Local,
}

pub use berth_proto::log::LogEntry;

/// How the log is kept.
#[derive(Default)]
pub struct Options {
    pub format: Format,
    /// Rotate at this size (0: never), keeping this many files.
    pub max_size: u64,
    pub max_files: u32,
    /// gzip rotated files.
    pub compress: bool,
    /// Also send every line here.
    pub forward: Option<Forward>,
}

pub struct JsonLog {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
    max_files: u32,
    format: Format,
    compress: bool,
    forward: Option<Forward>,
    forward_failing: bool,
    partial: [Vec<u8>; 2],
}

impl JsonLog {
    /// Open (append) a json-file log at `path`.
    pub fn open(path: &Path, max_size: u64, max_files: u32) -> Result<JsonLog, Error> {
        Self::open_with(
            path,
            Options {
                max_size,
                max_files,
                ..Default::default()
            },
        )
    }

    /// Open (append) the log at `path`, kept as `o` says.
    pub fn open_with(path: &Path, o: Options) -> Result<JsonLog, Error> {
        let file = open_append(path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(JsonLog {
            path: path.to_path_buf(),
            file,
            size,
            max_size: o.max_size,
            max_files: o.max_files.max(1),
            format: o.format,
            compress: o.compress,
            forward: o.forward,
            forward_failing: false,
            partial: [Vec::new(), Vec::new()],
        })
    }

    /// Add output of `stream`; complete lines are written at once, the rest kept.
    pub fn write(&mut self, stream: Stream, mut data: &[u8]) -> Result<(), Error> {
        let idx = stream as usize;
        while let Some(nl) = data.iter().position(|b| *b == b'\n') {
            let (line, rest) = data.split_at(nl + 1);
            data = rest;
            if self.partial[idx].is_empty() {
                self.entry(stream, line)?;
            } else {
                let mut buf = std::mem::take(&mut self.partial[idx]);
                buf.extend_from_slice(line);
                let r = self.entry_chunks(stream, &buf);
                buf.clear();
                self.partial[idx] = buf;
                r?;
            }
        }
        self.partial[idx].extend_from_slice(data);
        if self.partial[idx].len() >= MAX_LINE {
            let buf = std::mem::take(&mut self.partial[idx]);
            let full = buf.len() / MAX_LINE * MAX_LINE;
            self.entry_chunks(stream, &buf[..full])?;
            self.partial[idx] = buf[full..].to_vec();
        }
        Ok(())
    }

    /// Write what is left of a stream without a newline (at EOF).
    pub fn flush(&mut self, stream: Stream) -> Result<(), Error> {
        let buf = std::mem::take(&mut self.partial[stream as usize]);
        if buf.is_empty() {
            return Ok(());
        }
        self.entry_chunks(stream, &buf)
    }

    fn entry_chunks(&mut self, stream: Stream, data: &[u8]) -> Result<(), Error> {
        for chunk in data.chunks(MAX_LINE) {
            self.entry(stream, chunk)?;
        }
        Ok(())
    }

    fn entry(&mut self, stream: Stream, line: &[u8]) -> Result<(), Error> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        if let Some(f) = self.forward.as_mut() {
            // A forwarder that fails does not lose the local copy: warn once per failure run.
            match f.send(stream, line.strip_suffix(b"\n").unwrap_or(line), now) {
                Ok(()) => self.forward_failing = false,
                Err(e) if !self.forward_failing => {
                    self.forward_failing = true;
                    tracing::warn!("log forwarder: {e}");
                }
                Err(_) => {}
            }
        }
        let rec: Vec<u8> = match self.format {
            Format::Json => {
                let mut rec = serde_json::to_string(&serde_json::json!({
                    "log": String::from_utf8_lossy(line),
                    "stream": stream.name(),
                    "time": berth_runtime::state::rfc3339(now.as_secs() as i64, now.subsec_nanos()),
                }))
                .expect("a JSON object serializes");
                rec.push('\n');
                rec.into_bytes()
            }
            Format::Local => {
                use prost::Message;
                let e = LogEntry {
                    source: stream.name().into(),
                    time_nano: now.as_nanos() as i64,
                    line: line.strip_suffix(b"\n").unwrap_or(line).to_vec(),
                    partial: !line.ends_with(b"\n"),
                };
                let body = e.encode_to_vec();
                let n = (body.len() as u32).to_be_bytes();
                [&n[..], &body, &n[..]].concat()
            }
        };
        if self.max_size > 0 && self.size > 0 && self.size + rec.len() as u64 > self.max_size {
            self.rotate()?;
        }
        self.file.write_all(&rec).map_err(|err| Error::Write {
            path: self.path.clone(),
            err,
        })?;
        self.size += rec.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), Error> {
        let err = |err| Error::Rotate {
            path: self.path.clone(),
            err,
        };
        if self.max_files > 1 {
            let ext = if self.compress { ".gz" } else { "" };
            for n in (1..self.max_files).rev() {
                let from = if n == 1 {
                    self.path.clone()
                } else {
                    with_ext(numbered(&self.path, n - 1), ext)
                };
                let to = if n == 1 {
                    numbered(&self.path, 1)
                } else {
                    with_ext(numbered(&self.path, n), ext)
                };
                match std::fs::rename(&from, to) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(err(e)),
                    _ => {}
                }
            }
            if self.compress {
                gzip(&numbered(&self.path, 1)).map_err(err)?;
            }
            self.file = open_append(&self.path)?;
        } else {
            self.file.set_len(0).map_err(err)?;
        }
        self.size = 0;
        Ok(())
    }
}

fn with_ext(p: PathBuf, ext: &str) -> PathBuf {
    let mut s = p.into_os_string();
    s.push(ext);
    PathBuf::from(s)
}

/// `file` → `file.gz` (written beside it, then renamed over; the original removed).
fn gzip(file: &Path) -> std::io::Result<()> {
    let gz = with_ext(file.to_path_buf(), ".gz");
    let tmp = with_ext(file.to_path_buf(), ".gz.tmp");
    let mut enc =
        flate2::write::GzEncoder::new(File::create(&tmp)?, flate2::Compression::default());
    std::io::copy(&mut File::open(file)?, &mut enc)?;
    enc.finish()?.sync_all()?;
    std::fs::rename(&tmp, &gz)?;
    std::fs::remove_file(file)
}

fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

fn open_append(path: &Path) -> Result<File, Error> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|err| Error::Open {
            path: path.to_path_buf(),
            err,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("berth-jsonlog-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn lines_streams_and_partials() {
        let d = tmp("lines");
        let p = d.join("c-json.log");
        let mut log = JsonLog::open(&p, 0, 1).unwrap();
        log.write(Stream::Stdout, b"hel").unwrap();
        log.write(Stream::Stderr, b"oops\n").unwrap();
        log.write(Stream::Stdout, b"lo\nwor").unwrap();
        log.flush(Stream::Stdout).unwrap();
        let e = entries(&p);
        assert_eq!(e.len(), 3);
        assert_eq!(e[0]["log"], "oops\n");
        assert_eq!(e[0]["stream"], "stderr");
        assert_eq!(e[1]["log"], "hello\n");
        assert_eq!(e[1]["stream"], "stdout");
        assert_eq!(e[2]["log"], "wor");
        let t = e[0]["time"].as_str().unwrap();
        assert!(t.ends_with('Z') && t.len() == 30, "{t}");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn long_lines_are_split_and_invalid_utf8_replaced() {
        let d = tmp("long");
        let p = d.join("l.log");
        let mut log = JsonLog::open(&p, 0, 1).unwrap();
        let big = vec![b'x'; MAX_LINE * 2 + 5];
        log.write(Stream::Stdout, &big).unwrap();
        log.write(Stream::Stdout, b"\xff\n").unwrap();
        let e = entries(&p);
        assert_eq!(e.len(), 3);
        assert_eq!(e[0]["log"].as_str().unwrap().len(), MAX_LINE);
        assert_eq!(e[2]["log"], "xxxxx\u{fffd}\n");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn local_records_are_framed_and_rotated_files_compressed() {
        use prost::Message;
        let d = tmp("local");
        let p = d.join("c.log");
        let mut log = JsonLog::open_with(
            &p,
            Options {
                format: Format::Local,
                max_size: 200,
                max_files: 3,
                compress: true,
                forward: None,
            },
        )
        .unwrap();
        for i in 0..30 {
            log.write(Stream::Stderr, format!("line {i}\n").as_bytes())
                .unwrap();
        }
        log.write(Stream::Stdout, b"tail").unwrap();
        log.flush(Stream::Stdout).unwrap();
        let read = |b: &[u8]| -> Vec<LogEntry> {
            let mut out = Vec::new();
            let mut rest = b;
            while rest.len() >= 8 {
                let n = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
                out.push(LogEntry::decode(&rest[4..4 + n]).unwrap());
                assert_eq!(
                    &rest[4 + n..8 + n],
                    &rest[..4],
                    "the length frames the record"
                );
                rest = &rest[8 + n..];
            }
            assert!(rest.is_empty());
            out
        };
        let cur = read(&std::fs::read(&p).unwrap());
        let last = cur.last().unwrap();
        assert_eq!(
            (last.source.as_str(), last.line.as_slice(), last.partial),
            ("stdout", &b"tail"[..], true)
        );
        assert!(cur.iter().all(|e| e.time_nano > 0));
        assert!(!numbered(&p, 1).exists(), "rotated files are compressed");
        let gz = with_ext(numbered(&p, 1), ".gz");
        let mut plain = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(File::open(&gz).unwrap()),
            &mut plain,
        )
        .unwrap();
        let older = read(&plain);
        assert_eq!(older[0].source, "stderr");
        assert!(!older[0].partial);
        assert!(String::from_utf8_lossy(&older[0].line).starts_with("line "));
        assert!(with_ext(numbered(&p, 2), ".gz").exists());
        assert!(!with_ext(numbered(&p, 3), ".gz").exists());
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn rotation_keeps_max_files() {
        let d = tmp("rotate");
        let p = d.join("r.log");
        let mut log = JsonLog::open(&p, 300, 3).unwrap();
        for i in 0..40 {
            log.write(Stream::Stdout, format!("line {i}\n").as_bytes())
                .unwrap();
        }
        assert!(std::fs::metadata(&p).unwrap().len() <= 300);
        assert!(numbered(&p, 1).exists() && numbered(&p, 2).exists());
        assert!(!numbered(&p, 3).exists());
        // Newest in the current file, nothing lost between the files kept.
        let all: Vec<String> = [numbered(&p, 2), numbered(&p, 1), p.clone()]
            .iter()
            .flat_map(|f| entries(f))
            .map(|e| e["log"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(all.last().unwrap(), "line 39\n");
        let first: usize = all[0][5..].trim().parse().unwrap();
        for (k, l) in all.iter().enumerate() {
            assert_eq!(*l, format!("line {}\n", first + k));
        }
        std::fs::remove_dir_all(d).unwrap();
    }
}
