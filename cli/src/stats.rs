//! `berth stats`: docker's resource table (CPU %, memory, network and block I/O, pids),
//! refreshed every second, or once with `--no-stream`. CPU % is the container's share of
//! the host's CPU time between two samples, times the number of CPUs, as docker computes it.

use std::time::Duration;

use serde_json::{json, Value};

use crate::client::Client;
use crate::{enc, table, Outcome};

/// One row: the fields docker's `--format` names.
fn row(id: &str, name: &str, before: &Value, now: &Value) -> Value {
    let cpu = |s: &Value| {
        s["cpu_stats"]["cpu_usage"]["total_usage"]
            .as_f64()
            .unwrap_or(0.0)
    };
    let sys = |s: &Value| s["cpu_stats"]["system_cpu_usage"].as_f64().unwrap_or(0.0);
    let cpus = now["cpu_stats"]["online_cpus"].as_f64().unwrap_or(1.0);
    let (dc, ds) = (cpu(now) - cpu(before), sys(now) - sys(before));
    let cpu_perc = if dc > 0.0 && ds > 0.0 {
        dc / ds * cpus * 100.0
    } else {
        0.0
    };
    let mem = now["memory_stats"]["usage"].as_f64().unwrap_or(0.0);
    let limit = now["memory_stats"]["limit"].as_f64().unwrap_or(0.0);
    let (mut rx, mut tx) = (0.0, 0.0);
    for n in now["networks"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(_, n)| n)
    {
        rx += n["rx_bytes"].as_f64().unwrap_or(0.0);
        tx += n["tx_bytes"].as_f64().unwrap_or(0.0);
    }
    let (mut rd, mut wr) = (0.0, 0.0);
    for e in now["blkio_stats"]["io_service_bytes_recursive"]
        .as_array()
        .into_iter()
        .flatten()
    {
        match e["op"].as_str().map(str::to_ascii_lowercase).as_deref() {
            Some("read") => rd += e["value"].as_f64().unwrap_or(0.0),
            Some("write") => wr += e["value"].as_f64().unwrap_or(0.0),
            _ => {}
        }
    }
    json!({
        "ID": &id[..id.len().min(12)],
        "Container": &id[..id.len().min(12)],
        "Name": name.trim_start_matches('/'),
        "CPUPerc": format!("{cpu_perc:.2}%"),
        "MemUsage": format!("{} / {}", bin(mem), bin(limit)),
        "MemPerc": format!("{:.2}%", if limit > 0.0 { mem / limit * 100.0 } else { 0.0 }),
        "NetIO": format!("{} / {}", table::size(rx), table::size(tx)),
        "BlockIO": format!("{} / {}", table::size(rd), table::size(wr)),
        "PIDs": now["pids_stats"]["current"].as_u64().unwrap_or(0).to_string(),
    })
}

/// Docker's memory sizes (base 1024, four significant digits as Go's `%.4g`: "1.5MiB").
fn bin(n: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    let digits = if v >= 1000.0 {
        0
    } else if v >= 100.0 {
        1
    } else if v >= 10.0 {
        2
    } else {
        3
    };
    let mut t = format!("{v:.digits$}");
    if t.contains('.') {
        t = t.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{t}{}", units[i])
}

const HEADER: [&str; 8] = [
    "CONTAINER ID",
    "NAME",
    "CPU %",
    "MEM USAGE / LIMIT",
    "MEM %",
    "NET I/O",
    "BLOCK I/O",
    "PIDS",
];

fn print(rows: &[Value], format: Option<&str>) {
    match format {
        Some(f) => {
            let header = json!({
                "ID": "CONTAINER ID", "Container": "CONTAINER", "Name": "NAME",
                "CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %",
                "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS",
            });
            table::print_format(f, &header, rows);
        }
        None => {
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    [
                        "ID", "Name", "CPUPerc", "MemUsage", "MemPerc", "NetIO", "BlockIO", "PIDs",
                    ]
                    .iter()
                    .map(|k| r[*k].as_str().unwrap_or("").to_string())
                    .collect()
                })
                .collect();
            table::print(&HEADER, &cells);
        }
    }
}

/// The containers to show: those named, else the running ones (all with `-a`).
async fn targets(
    c: &Client,
    names: &[String],
    all: bool,
) -> Result<Vec<(String, String)>, crate::client::ApiError> {
    if !names.is_empty() {
        let mut out = Vec::new();
        for n in names {
            let i = c.get(&format!("/containers/{}/json", enc(n))).await?;
            out.push((
                i["Id"].as_str().unwrap_or("").to_string(),
                i["Name"].as_str().unwrap_or("").to_string(),
            ));
        }
        return Ok(out);
    }
    let list = c
        .get(&format!("/containers/json?all={}", all as u8))
        .await?;
    Ok(list
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|x| {
            (
                x["Id"].as_str().unwrap_or("").to_string(),
                x["Names"][0].as_str().unwrap_or("").to_string(),
            )
        })
        .collect())
}

async fn sample(c: &Client, id: &str) -> Value {
    c.get(&format!("/containers/{id}/stats?stream=false"))
        .await
        .unwrap_or(Value::Null)
}

pub async fn stats(
    c: &Client,
    names: &[String],
    all: bool,
    no_stream: bool,
    format: Option<&str>,
) -> Outcome {
    let mut last: std::collections::HashMap<String, Value> = Default::default();
    let mut first = true;
    loop {
        let list = targets(c, names, all).await?;
        let mut now = Vec::new();
        for (id, _) in &list {
            now.push(sample(c, id).await);
        }
        // The first round needs a second sample for CPU %.
        if first {
            for ((id, _), s) in list.iter().zip(&now) {
                last.insert(id.clone(), s.clone());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            now.clear();
            for (id, _) in &list {
                now.push(sample(c, id).await);
            }
        }
        let rows: Vec<Value> = list
            .iter()
            .zip(&now)
            .map(|((id, name), s)| row(id, name, last.get(id).unwrap_or(s), s))
            .collect();
        if !no_stream {
            // Clear the screen and go home, as docker redraws its table.
            print!("\x1b[2J\x1b[H");
        }
        print(&rows, format);
        if no_stream {
            return Ok(0);
        }
        for ((id, _), s) in list.iter().zip(now) {
            last.insert(id.clone(), s);
        }
        first = false;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_share_and_sizes() {
        let a = json!({"cpu_stats": {"cpu_usage": {"total_usage": 1_000_000_000u64}, "system_cpu_usage": 10_000_000_000u64, "online_cpus": 2}});
        let b = json!({"cpu_stats": {"cpu_usage": {"total_usage": 1_500_000_000u64}, "system_cpu_usage": 12_000_000_000u64, "online_cpus": 2},
            "memory_stats": {"usage": 1572864, "limit": 1073741824u64},
            "networks": {"eth0": {"rx_bytes": 1000, "tx_bytes": 2000}}, "pids_stats": {"current": 3}});
        let r = row("0123456789abcdef", "/web", &a, &b);
        assert_eq!(r["CPUPerc"], "50.00%");
        assert_eq!(r["MemUsage"], "1.5MiB / 1GiB");
        assert_eq!(r["NetIO"], "1kB / 2kB");
        assert_eq!(r["PIDs"], "3");
        assert_eq!(r["Name"], "web");
        assert_eq!(r["ID"], "0123456789ab");
    }
}
