//! Reading a container's log file, in either format the shim writes: Docker's json-file
//! (one JSON object a line) or `local` (length-framed `berth.log.v1.LogEntry` records, the
//! format of the local driver and of the copy kept for syslog and journald); rotated files
//! `.N` or, compressed, `.N.gz`.

use std::io::Read;
use std::path::{Path, PathBuf};

use prost::Message;

use super::Container;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Local,
}

/// One log record.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// "stdout" or "stderr".
    pub stream: String,
    /// RFC 3339 with nanoseconds.
    pub time: String,
    /// The text as written (with its newline, unless it was a partial line).
    pub line: Vec<u8>,
}

/// The format of `c`'s log file (by its driver).
pub fn format_of(c: &Container) -> Format {
    match c
        .doc
        .host_config
        .log_config
        .as_ref()
        .map(|l| l.r#type.as_str())
    {
        Some("local" | "syslog" | "journald") => Format::Local,
        _ => Format::Json,
    }
}

/// Whether `c`'s driver keeps a copy `docker logs` can read.
pub fn readable(c: &Container) -> bool {
    c.doc
        .host_config
        .log_config
        .as_ref()
        .map(|l| l.r#type.as_str())
        != Some("none")
}

/// The complete records at the start of `buf`, and how many bytes they took (a record
/// still being written is left for the next read).
pub fn parse(format: Format, buf: &[u8]) -> (Vec<Record>, usize) {
    let mut out = Vec::new();
    let mut used = 0;
    match format {
        Format::Json => {
            while let Some(i) = buf[used..].iter().position(|b| *b == b'\n') {
                let line = &buf[used..used + i];
                used += i + 1;
                let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else {
                    continue;
                };
                out.push(Record {
                    stream: v["stream"].as_str().unwrap_or("stdout").to_string(),
                    time: v["time"].as_str().unwrap_or("").to_string(),
                    line: v["log"].as_str().unwrap_or("").as_bytes().to_vec(),
                });
            }
        }
        Format::Local => {
            while buf.len() - used >= 8 {
                let n =
                    u32::from_be_bytes(buf[used..used + 4].try_into().expect("4 bytes")) as usize;
                if buf.len() - used < n + 8 {
                    break;
                }
                let body = &buf[used + 4..used + 4 + n];
                used += n + 8;
                let Ok(e) = berth_proto::log::LogEntry::decode(body) else {
                    continue;
                };
                let mut line = e.line;
                if !e.partial {
                    line.push(b'\n');
                }
                let (s, ns) = (
                    e.time_nano.div_euclid(1_000_000_000),
                    e.time_nano.rem_euclid(1_000_000_000),
                );
                out.push(Record {
                    stream: e.source,
                    time: crate::clock::rfc3339(s, ns as u32),
                    line,
                });
            }
        }
    }
    (out, used)
}

fn numbered(path: &Path, n: u32, ext: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}{ext}"));
    PathBuf::from(s)
}

/// The rotated files' records, oldest first.
pub fn read_rotated(path: &Path, format: Format) -> Vec<Record> {
    let mut out = Vec::new();
    for n in (1..64).rev() {
        let mut b = Vec::new();
        if let Ok(mut f) = std::fs::File::open(numbered(path, n, "")) {
            let _ = f.read_to_end(&mut b);
        } else if let Ok(f) = std::fs::File::open(numbered(path, n, ".gz")) {
            let _ = flate2::read::GzDecoder::new(f).read_to_end(&mut b);
        } else {
            continue;
        }
        out.extend(parse(format, &b).0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_formats_parse_and_partial_records_wait() {
        let json = b"{\"log\":\"a\\n\",\"stream\":\"stderr\",\"time\":\"2026-01-01T00:00:00.5Z\"}\n{\"log\":";
        let (r, used) = parse(Format::Json, json);
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].stream.as_str(), r[0].line.as_slice()),
            ("stderr", &b"a\n"[..])
        );
        assert_eq!(used, json.iter().position(|b| *b == b'\n').unwrap() + 1);
        let e = berth_proto::log::LogEntry {
            source: "stdout".into(),
            time_nano: 1_500_000_000,
            line: b"hi".to_vec(),
            partial: false,
        }
        .encode_to_vec();
        let n = (e.len() as u32).to_be_bytes();
        let mut buf = [&n[..], &e, &n[..]].concat();
        let whole = buf.len();
        buf.extend_from_slice(&n[..2]);
        let (r, used) = parse(Format::Local, &buf);
        assert_eq!(used, whole);
        assert_eq!(r[0].line, b"hi\n");
        assert_eq!(r[0].time, "1970-01-01T00:00:01.500000000Z");
    }
}
