//! Docker's json-file log format: one JSON object a line,
//! `{"log":"text\n","stream":"stdout","time":"2026-11-23T14:11:14.123456789Z"}`.
//! Output is split at newlines; a line longer than [`MAX_LINE`] is written in pieces without
//! the newline, as Docker does. The file rotates at `max_size` bytes, keeping `max_files`
//! files (`log`, `log.1`, … oldest last).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

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

pub struct JsonLog {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
    max_files: u32,
    partial: [Vec<u8>; 2],
}

impl JsonLog {
    /// Open (append) the log at `path`.
    pub fn open(path: &Path, max_size: u64, max_files: u32) -> Result<JsonLog, Error> {
        let file = open_append(path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(JsonLog {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
            max_files: max_files.max(1),
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
        let mut rec = serde_json::to_string(&serde_json::json!({
            "log": String::from_utf8_lossy(line),
            "stream": stream.name(),
            "time": berth_runtime::state::now_rfc3339(),
        }))
        .expect("a JSON object serializes");
        rec.push('\n');
        if self.max_size > 0 && self.size > 0 && self.size + rec.len() as u64 > self.max_size {
            self.rotate()?;
        }
        self.file
            .write_all(rec.as_bytes())
            .map_err(|err| Error::Write {
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
            for n in (1..self.max_files).rev() {
                let from = if n == 1 {
                    self.path.clone()
                } else {
                    numbered(&self.path, n - 1)
                };
                match std::fs::rename(&from, numbered(&self.path, n)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(err(e)),
                    _ => {}
                }
            }
            self.file = open_append(&self.path)?;
        } else {
            self.file.set_len(0).map_err(err)?;
        }
        self.size = 0;
        Ok(())
    }
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
