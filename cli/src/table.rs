//! Output like docker's: aligned columns (three spaces apart) and `--format` templates
//! (`{{.Field}}`, `{{json .}}`, a leading `table` for a header row).

use serde_json::Value;

/// Print rows under a header, columns padded to their widest cell.
pub fn print(header: &[&str], rows: &[Vec<String>]) {
    let mut w: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < w.len() {
                w[i] = w[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(c);
                s.push_str(&" ".repeat(w[i] - c.chars().count() + 3));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

/// Fill a template with a row's fields.
pub fn render(template: &str, fields: &Value) -> String {
    let t = template.replace("\\t", "\t").replace("\\n", "\n");
    let mut out = String::new();
    let mut rest = t.as_str();
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let Some(j) = rest[i..].find("}}") else {
            out.push_str(&rest[i..]);
            return out;
        };
        let expr = rest[i + 2..i + j].trim();
        rest = &rest[i + j + 2..];
        if expr == "json ." {
            out.push_str(&fields.to_string());
        } else if let Some(path) = expr.strip_prefix("json .") {
            out.push_str(&lookup(fields, path).to_string());
        } else if let Some(path) = expr.strip_prefix('.') {
            match lookup(fields, path) {
                Value::String(s) => out.push_str(&s),
                Value::Null => out.push_str("<no value>"),
                v => out.push_str(&v.to_string()),
            }
        }
    }
    out.push_str(rest);
    out
}

fn lookup(v: &Value, path: &str) -> Value {
    let mut cur = v;
    for k in path.split('.').filter(|k| !k.is_empty()) {
        cur = &cur[k];
    }
    cur.clone()
}

/// Print rows with `--format` (a `table ` prefix prints the header row too).
pub fn print_format(format: &str, header: &Value, rows: &[Value]) {
    if let Some(t) = format.strip_prefix("table") {
        let t = t.trim_start();
        let lines: Vec<String> = std::iter::once(render(t, header))
            .chain(rows.iter().map(|r| render(t, r)))
            .collect();
        let cells: Vec<Vec<String>> = lines
            .iter()
            .map(|l| l.split('\t').map(String::from).collect())
            .collect();
        let head: Vec<&str> = cells[0].iter().map(String::as_str).collect();
        print(&head, &cells[1..]);
    } else {
        for r in rows {
            println!("{}", render(format, r));
        }
    }
}

/// Docker's human sizes (base 1000, three significant digits).
pub fn size(n: f64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    let decimals = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let p = format!("{v:.decimals$}");
    let p = if p.contains('.') {
        p.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        p
    };
    format!("{p}{}", units[i])
}

/// "2 minutes ago", as docker prints ages.
pub fn ago(unix: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let s = (now - unix).max(0);
    let h = match s {
        s if s < 1 => "Less than a second".to_string(),
        s if s < 60 => format!("{s} seconds"),
        s if s < 120 => "About a minute".to_string(),
        s if s < 3600 => format!("{} minutes", s / 60),
        s if s < 7200 => "About an hour".to_string(),
        s if s < 86400 => format!("{} hours", s / 3600),
        s => format!("{} days", s / 86400),
    };
    format!("{h} ago")
}

/// Seconds since the epoch as RFC 3339 (UTC), as `CreatedAt` fields print.
pub fn rfc3339(unix: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_and_sizes() {
        let v = serde_json::json!({"Names": "web", "State": {"Status": "running"}, "N": 3});
        assert_eq!(
            render("{{.Names}} {{.State.Status}} {{.N}}", &v),
            "web running 3"
        );
        assert_eq!(render("{{json .State}}", &v), r#"{"Status":"running"}"#);
        assert_eq!(size(1_290_000.0), "1.29MB");
        assert_eq!(size(512.0), "512B");
        assert_eq!(size(65_536.0), "65.5kB");
    }
}
