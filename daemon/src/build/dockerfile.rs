//! Dockerfile syntax: parser directives (`# escape=`, `# syntax=`), comments, line
//! continuations, instructions with their `--flags`, JSON (exec) and shell forms, and the
//! shell-like word processing Docker applies to arguments (quotes, escapes, `$VAR`,
//! `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:+alt}`, `${VAR+alt}`).
//!
//! Errors name the line: `Dockerfile line 3: unknown instruction: FOO`.

use std::collections::BTreeMap;

/// One instruction, as written and as parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct Instruction {
    /// 1-based line where it starts.
    pub line: usize,
    /// Upper-case keyword (`RUN`).
    pub cmd: String,
    /// `--name=value` flags given before the arguments.
    pub flags: Vec<(String, String)>,
    /// The arguments after the flags, continuation lines joined.
    pub rest: String,
    /// The text Docker shows in `Step N/M : …` (keyword and arguments as written).
    pub original: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dockerfile {
    pub escape: char,
    pub instructions: Vec<Instruction>,
}

pub const KNOWN: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

pub fn err(line: usize, msg: impl std::fmt::Display) -> String {
    format!("Dockerfile parse error line {line}: {msg}")
}

/// Parse a whole Dockerfile.
pub fn parse(text: &str) -> Result<Dockerfile, String> {
    let mut escape = '\\';
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    // Parser directives: leading `# key=value` comments, before anything else.
    let mut seen = std::collections::HashSet::new();
    while i < lines.len() {
        let l = lines[i].trim();
        let Some(c) = l.strip_prefix('#') else { break };
        let Some((k, v)) = c.split_once('=') else {
            break;
        };
        let k = k.trim().to_ascii_lowercase();
        if k.is_empty() || k.contains(char::is_whitespace) {
            break;
        }
        if !seen.insert(k.clone()) {
            return Err(err(
                i + 1,
                format!("only one {k} parser directive can be used"),
            ));
        }
        if k == "escape" {
            escape = match v.trim() {
                "\\" => '\\',
                "`" => '`',
                other => {
                    return Err(err(
                        i + 1,
                        format!("invalid escape token {other:?}: must be ` or \\"),
                    ))
                }
            };
        }
        i += 1;
    }
    let mut out = Vec::new();
    while i < lines.len() {
        let start = i;
        let first = lines[i];
        i += 1;
        let t = first.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        // Join continuation lines (comment and empty lines inside are dropped).
        let mut joined = String::new();
        let mut cur = first.to_string();
        loop {
            let trimmed = cur.trim_end();
            if let Some(body) = trimmed.strip_suffix(escape) {
                joined.push_str(body);
                let mut next = None;
                while i < lines.len() {
                    let l = lines[i];
                    i += 1;
                    let lt = l.trim_start();
                    if lt.starts_with('#') || lt.is_empty() {
                        continue;
                    }
                    next = Some(l.to_string());
                    break;
                }
                match next {
                    Some(n) => cur = n,
                    None => break,
                }
            } else {
                joined.push_str(&cur);
                break;
            }
        }
        let joined = joined.trim().to_string();
        let (kw, rest) = match joined.find(char::is_whitespace) {
            Some(p) => (&joined[..p], joined[p..].trim_start()),
            None => (joined.as_str(), ""),
        };
        let cmd = kw.to_ascii_uppercase();
        if !KNOWN.contains(&cmd.as_str()) {
            return Err(err(start + 1, format!("unknown instruction: {kw}")));
        }
        let (flags, rest) = split_flags(rest, start + 1)?;
        out.push(Instruction {
            line: start + 1,
            original: format!("{cmd} {}", joined[kw.len()..].trim_start()),
            cmd,
            flags,
            rest: rest.to_string(),
        });
    }
    Ok(Dockerfile {
        escape,
        instructions: out,
    })
}

/// Leading `--name=value` / `--name` words.
type Flags = Vec<(String, String)>;

fn split_flags(rest: &str, line: usize) -> Result<(Flags, &str), String> {
    let mut flags = Vec::new();
    let mut r = rest;
    while let Some(f) = r.strip_prefix("--") {
        let end = f.find(char::is_whitespace).unwrap_or(f.len());
        let word = &f[..end];
        if word.is_empty() {
            break;
        }
        let (k, v) = word.split_once('=').unwrap_or((word, ""));
        if k.is_empty() {
            return Err(err(line, format!("bad flag {word:?}")));
        }
        flags.push((k.to_string(), v.to_string()));
        r = f[end..].trim_start();
    }
    Ok((flags, r))
}

/// A JSON array of strings (exec form), if `rest` is one.
pub fn json_form(rest: &str) -> Option<Vec<String>> {
    let t = rest.trim();
    if !t.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(t).ok()
}

/// Variables visible to word processing.
pub type Vars = BTreeMap<String, String>;

/// Process one word: quotes removed, escapes applied, variables expanded.
pub fn expand(s: &str, vars: &Vars, escape: char) -> Result<String, String> {
    Ok(words_inner(s, vars, escape, false)?.join(" "))
}

/// Split into words (quotes keep spaces), expanding variables.
pub fn words(s: &str, vars: &Vars, escape: char) -> Result<Vec<String>, String> {
    words_inner(s, vars, escape, true)
}

fn words_inner(s: &str, vars: &Vars, escape: char, split: bool) -> Result<Vec<String>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if split && c.is_whitespace() {
            if in_word {
                out.push(std::mem::take(&mut cur));
                in_word = false;
            }
            i += 1;
            continue;
        }
        in_word = true;
        if c == escape {
            if let Some(&n) = chars.get(i + 1) {
                cur.push(n);
                i += 2;
            } else {
                cur.push(c);
                i += 1;
            }
            continue;
        }
        match c {
            '\'' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&x| x == '\'')
                    .ok_or_else(|| format!("unexpected end of statement while looking for matching single-quote in {s:?}"))?;
                cur.extend(&chars[i + 1..i + 1 + end]);
                i += end + 2;
            }
            '"' => {
                i += 1;
                loop {
                    let Some(&d) = chars.get(i) else {
                        return Err(format!(
                            "unexpected end of statement while looking for matching double-quote in {s:?}"
                        ));
                    };
                    if d == '"' {
                        i += 1;
                        break;
                    }
                    if d == escape {
                        // Inside double quotes the escape only escapes ", $, itself.
                        match chars.get(i + 1) {
                            Some(&n) if n == '"' || n == '$' || n == escape => {
                                cur.push(n);
                                i += 2;
                            }
                            _ => {
                                cur.push(d);
                                i += 1;
                            }
                        }
                        continue;
                    }
                    if d == '$' {
                        let (v, used) = variable(&chars[i..], vars, escape)?;
                        cur.push_str(&v);
                        i += used;
                        continue;
                    }
                    cur.push(d);
                    i += 1;
                }
            }
            '$' => {
                let (v, used) = variable(&chars[i..], vars, escape)?;
                cur.push_str(&v);
                i += used;
            }
            _ => {
                cur.push(c);
                i += 1;
            }
        }
    }
    if in_word || !split {
        out.push(cur);
    }
    Ok(out)
}

/// Expand the variable reference at the start of `c` (which begins with `$`).
/// Returns the value and how many characters it used.
fn variable(c: &[char], vars: &Vars, escape: char) -> Result<(String, usize), String> {
    let name_char = |x: char| x.is_ascii_alphanumeric() || x == '_';
    match c.get(1) {
        Some('{') => {
            let mut depth = 0;
            let mut end = None;
            for (j, &x) in c.iter().enumerate().skip(2) {
                match x {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        end = Some(j);
                        break;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            let end = end.ok_or_else(|| "missing '}' in variable reference".to_string())?;
            let inner: String = c[2..end].iter().collect();
            let nlen = inner.chars().take_while(|&x| name_char(x)).count();
            let name = &inner[..nlen];
            if name.is_empty() {
                return Err(format!("bad substitution: ${{{inner}}}"));
            }
            let op = &inner[nlen..];
            let val = vars.get(name);
            let word = |w: &str| expand(w, vars, escape);
            let v = if op.is_empty() {
                val.cloned().unwrap_or_default()
            } else if let Some(w) = op.strip_prefix(":-") {
                match val.filter(|v| !v.is_empty()) {
                    Some(v) => v.clone(),
                    None => word(w)?,
                }
            } else if let Some(w) = op.strip_prefix(":+") {
                match val.filter(|v| !v.is_empty()) {
                    Some(_) => word(w)?,
                    None => String::new(),
                }
            } else if let Some(w) = op.strip_prefix('-') {
                match val {
                    Some(v) => v.clone(),
                    None => word(w)?,
                }
            } else if let Some(w) = op.strip_prefix('+') {
                match val {
                    Some(_) => word(w)?,
                    None => String::new(),
                }
            } else if let Some(w) = op.strip_prefix(":?") {
                match val.filter(|v| !v.is_empty()) {
                    Some(v) => v.clone(),
                    None => return Err(format!("{name}: {}", word(w)?)),
                }
            } else {
                return Err(format!("unsupported modifier ({op}) in substitution"));
            };
            Ok((v, end + 1))
        }
        Some(&x) if name_char(x) => {
            let n = c[1..].iter().take_while(|&&x| name_char(x)).count();
            let name: String = c[1..1 + n].iter().collect();
            Ok((vars.get(&name).cloned().unwrap_or_default(), 1 + n))
        }
        _ => Ok(("$".into(), 1)),
    }
}

/// `k=v k2="v 2"` pairs (ENV, LABEL), or the legacy one-pair `k v…` form.
pub fn pairs(rest: &str, vars: &Vars, escape: char) -> Result<Vec<(String, String)>, String> {
    let ws = words(rest, &Vars::new(), '\u{0}').unwrap_or_default();
    let legacy = ws.first().is_some_and(|w| !w.contains('='));
    if legacy {
        let t = rest.trim();
        let (k, v) = t
            .split_once(char::is_whitespace)
            .ok_or_else(|| "needs a value".to_string())?;
        return Ok(vec![(
            expand(k, vars, escape)?,
            expand(v.trim(), vars, escape)?,
        )]);
    }
    let mut out = Vec::new();
    for w in words(rest, vars, escape)? {
        let (k, v) = w
            .split_once('=')
            .ok_or_else(|| format!("{w:?} is not key=value"))?;
        if k.is_empty() {
            return Err(format!("{w:?}: empty key"));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(kv: &[(&str, &str)]) -> Vars {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn continuations_comments_flags_and_directives() {
        let df = parse(
            "# escape=`\n# a comment\nFROM busybox AS base\nRUN echo a `\n  # inside\n  && echo b\ncopy --chown=1:2 --from=base a b\n",
        )
        .unwrap();
        assert_eq!(df.escape, '`');
        let i = &df.instructions;
        assert_eq!(i.len(), 3);
        assert_eq!(i[0].cmd, "FROM");
        assert_eq!(i[1].rest, "echo a   && echo b");
        assert_eq!(i[1].line, 4);
        assert_eq!(i[2].cmd, "COPY");
        assert_eq!(
            i[2].flags,
            vec![
                ("chown".into(), "1:2".into()),
                ("from".into(), "base".into())
            ]
        );
        assert_eq!(i[2].rest, "a b");
        assert_eq!(i[2].original, "COPY --chown=1:2 --from=base a b");
    }

    #[test]
    fn unknown_instruction_names_the_line() {
        let e = parse("FROM x\n\nFROB y\n").unwrap_err();
        assert!(e.contains("line 3") && e.contains("FROB"), "{e}");
    }

    #[test]
    fn words_and_substitution() {
        let v = vars(&[("A", "1"), ("E", ""), ("P", "/usr/bin")]);
        assert_eq!(
            expand("$A-${A}-${B:-d}-${E:-e}-${E-x}", &v, '\\').unwrap(),
            "1-1-d-e-"
        );
        assert_eq!(expand("${A:+yes}${B:+no}", &v, '\\').unwrap(), "yes");
        assert_eq!(expand("'$A' \"$A\" \\$A", &v, '\\').unwrap(), "$A 1 $A");
        assert_eq!(
            words("a \"b c\" 'd e' f\\ g", &v, '\\').unwrap(),
            vec!["a", "b c", "d e", "f g"]
        );
        assert_eq!(expand("${P}:/x", &v, '\\').unwrap(), "/usr/bin:/x");
        assert!(expand("${A", &v, '\\').is_err());
        assert!(expand("'open", &v, '\\').is_err());
    }

    #[test]
    fn env_pairs_both_forms() {
        let v = vars(&[("X", "1")]);
        assert_eq!(
            pairs("a=$X b=\"two words\" c=x\\ y", &v, '\\').unwrap(),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "two words".into()),
                ("c".into(), "x y".into())
            ]
        );
        assert_eq!(
            pairs("NAME some value $X", &v, '\\').unwrap(),
            vec![("NAME".into(), "some value 1".into())]
        );
    }

    #[test]
    fn json_form_only_for_string_arrays() {
        assert_eq!(
            json_form(r#"["a", "b"]"#),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(json_form("[not json"), None);
        assert_eq!(json_form("echo [x]"), None);
    }
}
