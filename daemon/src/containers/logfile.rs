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

/// How much is read at a time, backwards or forwards.
const CHUNK: usize = 64 << 10;
/// A JSON log line longer than this (the shim splits lines at 16 KiB) ends a backwards
/// read: the log is not one berth wrote.
const MAX_LINE: usize = 8 << 20;

/// Every record of the log in order — rotated files oldest first, then the current file
/// `cur` up to `len` — handed to `each` a chunk at a time (memory bounded by the chunk, not
/// the log); stops when `each` says so. Returns where the current file's last complete
/// record ends (following goes on from there).
pub fn for_each(
    path: &Path,
    format: Format,
    cur: Option<&std::fs::File>,
    len: u64,
    mut each: impl FnMut(Vec<Record>) -> bool,
) -> u64 {
    for n in (1..64).rev() {
        let go = match rotated(path, n) {
            Some(r) => forward(r, format, &mut each).1,
            None => true,
        };
        if !go {
            return 0;
        }
    }
    match cur {
        Some(f) => {
            use std::io::Seek;
            let mut f = f;
            if f.seek(std::io::SeekFrom::Start(0)).is_err() {
                return 0;
            }
            forward(f.take(len), format, &mut each).0
        }
        None => 0,
    }
}

/// The last `n` records of the log, oldest first: the current file `cur` (up to `len`)
/// read backwards from its end, then rotated files newest first, only as far as needed.
/// Memory is bounded by `n` records and a chunk. Also returns where the current file's
/// last complete record ends.
pub fn tail(
    path: &Path,
    format: Format,
    cur: Option<&std::fs::File>,
    len: u64,
    n: usize,
) -> (Vec<Record>, u64) {
    let mut got: std::collections::VecDeque<Record> = Default::default();
    let mut end = 0;
    if let Some(f) = cur {
        let back = match format {
            Format::Json => json_backwards(f, len, n),
            Format::Local => local_backwards(f, len, n),
        };
        match back {
            Some((recs, e)) => {
                got.extend(recs);
                end = e;
            }
            // Framing not readable backwards (a record being written at the end): forwards,
            // keeping the last n.
            None => {
                use std::io::Seek;
                let mut f = f;
                if f.seek(std::io::SeekFrom::Start(0)).is_ok() {
                    end = forward(f.take(len), format, &mut |recs| {
                        keep_last(&mut got, recs, n);
                        true
                    })
                    .0;
                }
            }
        }
    }
    let mut k = 1;
    while got.len() < n && k < 64 {
        if let Some(r) = rotated(path, k) {
            let mut older = Default::default();
            let want = n - got.len();
            forward(r, format, &mut |recs| {
                keep_last(&mut older, recs, want);
                true
            });
            for r in older.into_iter().rev() {
                got.push_front(r);
            }
        }
        k += 1;
    }
    (got.into(), end)
}

fn keep_last(q: &mut std::collections::VecDeque<Record>, recs: Vec<Record>, n: usize) {
    for r in recs {
        if q.len() == n {
            q.pop_front();
        }
        if n > 0 {
            q.push_back(r);
        }
    }
}

/// Rotated file `n`: plain, or gzip-compressed.
fn rotated(path: &Path, n: u32) -> Option<Box<dyn Read>> {
    if let Ok(f) = std::fs::File::open(numbered(path, n, "")) {
        return Some(Box::new(f));
    }
    let f = std::fs::File::open(numbered(path, n, ".gz")).ok()?;
    Some(Box::new(flate2::read::GzDecoder::new(f)))
}

/// Parse `r` chunk by chunk, handing each chunk's records to `each`. Returns the bytes the
/// complete records took and whether `each` wants more.
fn forward(
    mut r: impl Read,
    format: Format,
    each: &mut dyn FnMut(Vec<Record>) -> bool,
) -> (u64, bool) {
    let mut pending = Vec::new();
    let mut used_total = 0u64;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let k = match r.read(&mut buf) {
            Ok(0) | Err(_) => return (used_total, true),
            Ok(k) => k,
        };
        pending.extend_from_slice(&buf[..k]);
        let (recs, used) = parse(format, &pending);
        pending.drain(..used);
        used_total += used as u64;
        if pending.len() > MAX_LINE {
            // No record boundary in sight: not a log we wrote; skip what cannot be one.
            used_total += pending.len() as u64;
            pending.clear();
        }
        if !recs.is_empty() && !each(recs) {
            return (used_total, false);
        }
    }
}

/// JSON lines read backwards from `len`: the last `n` complete ones, and where the last
/// one ends (None: a line too long to be ours).
fn json_backwards(f: &std::fs::File, len: u64, n: usize) -> Option<(Vec<Record>, u64)> {
    use std::os::unix::fs::FileExt;
    let mut pos = len;
    // Bytes from `pos` on that are not yet split into lines; after the first read it ends
    // just after a newline (a line still being written at the end is left out).
    let mut rest: Vec<u8> = Vec::new();
    let mut end = None;
    let mut out = Vec::new();
    while out.len() < n {
        if pos > 0 {
            let start = pos.saturating_sub(CHUNK as u64);
            let mut chunk = vec![0u8; (pos - start) as usize];
            f.read_exact_at(&mut chunk, start).ok()?;
            pos = start;
            chunk.extend_from_slice(&rest);
            rest = chunk;
            if end.is_none() {
                match rest.iter().rposition(|b| *b == b'\n') {
                    Some(i) => {
                        end = Some(pos + i as u64 + 1);
                        rest.truncate(i + 1);
                    }
                    None if pos == 0 => return Some((Vec::new(), 0)),
                    None if rest.len() > MAX_LINE => return None,
                    None => continue,
                }
            }
        } else if rest.is_empty() {
            break;
        }
        // Complete lines at the end of `rest`: those with a newline (or the file's start)
        // before them.
        while out.len() < n && !rest.is_empty() {
            let body = &rest[..rest.len() - 1];
            let start = match body.iter().rposition(|b| *b == b'\n') {
                Some(i) => i + 1,
                None if pos == 0 => 0,
                None => break,
            };
            out.extend(parse(Format::Json, &rest[start..]).0);
            rest.truncate(start);
        }
        if rest.len() > MAX_LINE {
            return None;
        }
        if pos == 0 && (rest.is_empty() || out.len() >= n) {
            break;
        }
    }
    out.reverse();
    Some((out, end.unwrap_or(0)))
}

/// `local` records ([len][entry][len]) read backwards from `len` by their trailing
/// length; None when the end is not a whole record (one being written) or the framing
/// does not check out.
fn local_backwards(f: &std::fs::File, len: u64, n: usize) -> Option<(Vec<Record>, u64)> {
    use std::os::unix::fs::FileExt;
    let mut pos = len;
    let mut out = Vec::new();
    while out.len() < n && pos > 0 {
        if pos < 8 {
            return None;
        }
        let mut t = [0u8; 4];
        f.read_exact_at(&mut t, pos - 4).ok()?;
        let k = u32::from_be_bytes(t) as u64;
        if k + 8 > pos || k as usize > MAX_LINE {
            return None;
        }
        let mut rec = vec![0u8; (k + 8) as usize];
        f.read_exact_at(&mut rec, pos - k - 8).ok()?;
        if rec[..4] != t {
            return None;
        }
        let (r, used) = parse(Format::Local, &rec);
        if used != rec.len() {
            return None;
        }
        out.extend(r);
        pos -= k + 8;
    }
    out.reverse();
    Some((out, len))
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

    fn json_line(i: usize) -> String {
        format!(
            "{{\"log\":\"line {i}\\n\",\"stream\":\"stdout\",\"time\":\"2026-01-01T00:00:00Z\"}}\n"
        )
    }

    fn local_rec(i: usize) -> Vec<u8> {
        let e = berth_proto::log::LogEntry {
            source: "stderr".into(),
            time_nano: i as i64,
            line: format!("rec {i}").into_bytes(),
            partial: false,
        }
        .encode_to_vec();
        let n = (e.len() as u32).to_be_bytes();
        [&n[..], &e, &n[..]].concat()
    }

    #[test]
    fn tails_read_backwards_across_chunks_and_rotated_files() {
        let dir = std::env::temp_dir().join(format!("berth-logtail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log.json");
        // Rotated: lines 0..10 in .2 (gzip), 10..20 in .1; current: 20..20000 plus a line
        // still being written.
        let text = |r: std::ops::Range<usize>| r.map(json_line).collect::<String>();
        {
            use std::io::Write;
            let f = std::fs::File::create(numbered(&path, 2, ".gz")).unwrap();
            let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
            gz.write_all(text(0..10).as_bytes()).unwrap();
            gz.finish().unwrap();
        }
        std::fs::write(numbered(&path, 1, ""), text(10..20)).unwrap();
        let mut cur = text(20..20000);
        let whole = cur.len() as u64;
        cur.push_str("{\"log\":\"half");
        std::fs::write(&path, &cur).unwrap();
        let f = std::fs::File::open(&path).unwrap();
        let len = f.metadata().unwrap().len();
        let lines = |v: &[Record]| -> Vec<String> {
            v.iter()
                .map(|r| String::from_utf8_lossy(&r.line).trim().to_string())
                .collect()
        };
        let (r, end) = tail(&path, Format::Json, Some(&f), len, 3);
        assert_eq!(lines(&r), ["line 19997", "line 19998", "line 19999"]);
        assert_eq!(end, whole);
        // More than one chunk back.
        let (r, _) = tail(&path, Format::Json, Some(&f), len, 5000);
        assert_eq!(r.len(), 5000);
        assert_eq!(lines(&r[..1]), ["line 15000"]);
        // Into the rotated files, oldest first.
        let (r, _) = tail(&path, Format::Json, Some(&f), len, 19985);
        assert_eq!(lines(&r[..1]), ["line 15"]);
        let (r, _) = tail(&path, Format::Json, Some(&f), len, 1 << 30);
        assert_eq!(r.len(), 20000);
        assert_eq!(lines(&r[..2]), ["line 0", "line 1"]);
        let (r, _) = tail(&path, Format::Json, Some(&f), len, 0);
        assert!(r.is_empty());
        // Everything in order, chunk by chunk.
        let mut all = Vec::new();
        let end = for_each(&path, Format::Json, Some(&f), len, |recs| {
            all.extend(recs);
            true
        });
        assert_eq!(all.len(), 20000);
        assert_eq!(lines(&all[19999..]), ["line 19999"]);
        assert_eq!(end, whole);
        // local: by trailing lengths; a record being written falls back to forwards.
        let lpath = dir.join("log.local");
        let mut b: Vec<u8> = (0..3000).flat_map(local_rec).collect();
        std::fs::write(&lpath, &b).unwrap();
        let lf = std::fs::File::open(&lpath).unwrap();
        let (r, end) = tail(&lpath, Format::Local, Some(&lf), b.len() as u64, 2);
        assert_eq!(lines(&r), ["rec 2998", "rec 2999"]);
        assert_eq!(end, b.len() as u64);
        let whole = b.len() as u64;
        b.extend_from_slice(&local_rec(3000)[..5]);
        std::fs::write(&lpath, &b).unwrap();
        let lf = std::fs::File::open(&lpath).unwrap();
        let (r, end) = tail(&lpath, Format::Local, Some(&lf), b.len() as u64, 2);
        assert_eq!(lines(&r), ["rec 2998", "rec 2999"]);
        assert_eq!(end, whole);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
