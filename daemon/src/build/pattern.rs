//! Path patterns: Go's `filepath.Match` rules (`*`, `?`, `[a-z]`, `[^x]`, `\` escapes), used
//! for COPY/ADD sources, plus `.dockerignore` files (`**` for any number of directories,
//! `!` exceptions, the last matching line wins, a matched directory covers what it holds).

/// Does one path segment match one pattern segment?
pub fn segment_matches(pat: &str, name: &str) -> bool {
    let p: Vec<char> = pat.chars().collect();
    let n: Vec<char> = name.chars().collect();
    seg(&p, &n)
}

/// Iterative wildcard matching: on a mismatch, only the last `*` takes one more character
/// (what it matched before is never revisited), so the work is at most pattern × name,
/// never exponential in the number of stars.
fn seg(p: &[char], n: &[char]) -> bool {
    let (mut pi, mut ni) = (0, 0);
    // After the last `*` seen: where the pattern goes on, and where in the name it did.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if let Some(&c) = p.get(pi) {
            let step = match c {
                '*' => {
                    star = Some((pi + 1, ni));
                    pi += 1;
                    continue;
                }
                '?' => Some(1),
                '[' => match class(&p[pi + 1..], n[ni]) {
                    Some((true, used)) => Some(1 + used),
                    _ => None,
                },
                '\\' if pi + 1 < p.len() => (p[pi + 1] == n[ni]).then_some(2),
                c => (c == n[ni]).then_some(1),
            };
            if let Some(k) = step {
                pi += k;
                ni += 1;
                continue;
            }
        }
        match star {
            Some((sp, sn)) => {
                star = Some((sp, sn + 1));
                pi = sp;
                ni = sn + 1;
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Match `c` against the class starting after '['. Returns (matched, chars used incl. ']').
fn class(p: &[char], c: char) -> Option<(bool, usize)> {
    let mut i = 0;
    let negate = matches!(p.first(), Some('^') | Some('!'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < p.len() {
        if p[i] == ']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        let mut lo = p[i];
        if lo == '\\' && i + 1 < p.len() {
            i += 1;
            lo = p[i];
        }
        let mut hi = lo;
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            hi = p[i + 2];
            i += 2;
        }
        if lo <= c && c <= hi {
            matched = true;
        }
        i += 1;
    }
    None
}

/// Does the whole slash-separated `path` match `pattern` (segments, `**` allowed)?
pub fn path_matches(pattern: &str, path: &str) -> bool {
    let p: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    let n: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    segs(&p, &n)
}

/// The same over path segments, `**` the star.
fn segs(p: &[&str], n: &[&str]) -> bool {
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some(&"**") => {
                star = Some((pi + 1, ni));
                pi += 1;
                continue;
            }
            Some(s) if segment_matches(s, n[ni]) => {
                pi += 1;
                ni += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, sn)) => {
                star = Some((sp, sn + 1));
                pi = sp;
                ni = sn + 1;
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|s| *s == "**")
}

/// A parsed `.dockerignore`.
#[derive(Clone, Debug, Default)]
pub struct Ignore {
    rules: Vec<(bool, String)>, // (exception, cleaned pattern)
}

impl Ignore {
    pub fn parse(text: &str) -> Ignore {
        let mut rules = Vec::new();
        for l in text.lines() {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let (exc, p) = match l.strip_prefix('!') {
                Some(p) => (true, p.trim()),
                None => (false, l),
            };
            let cleaned = clean(p);
            if cleaned.is_empty() {
                continue;
            }
            rules.push((exc, cleaned));
        }
        Ignore { rules }
    }

    /// Is `path` (relative to the context root) excluded?
    pub fn excludes(&self, path: &str) -> bool {
        let path = clean(path);
        let parts: Vec<&str> = path.split('/').collect();
        let mut excluded = false;
        for (exc, pat) in &self.rules {
            // The path itself or one of the directories holding it.
            let hit = (1..=parts.len()).any(|k| path_matches(pat, &parts[..k].join("/")));
            if hit {
                excluded = !exc;
            }
        }
        excluded
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Should a walk leave `path` out, children and all? An excluded directory is still
    /// walked when an exception (`!…`) may re-include something inside it; its excluded
    /// files are left out one by one.
    pub fn skips(&self, path: &str, is_dir: bool) -> bool {
        if !self.excludes(path) {
            return false;
        }
        if !is_dir {
            return true;
        }
        let dir = format!("{}/", clean(path));
        !self
            .rules
            .iter()
            .any(|(exc, p)| *exc && (p.starts_with(&dir) || p.contains(['*', '?', '['])))
    }
}

/// Like Go's `filepath.Clean` for relative slash paths, leading `/` dropped.
pub fn clean(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for s in p.split('/') {
        match s {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    out.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_stars_match_in_polynomial_time() {
        let name = "a".repeat(100 << 10);
        let pat = format!("{}b", "a*".repeat(50));
        assert!(!segment_matches(&pat, &name));
        assert!(segment_matches(&format!("{}a", "*".repeat(50)), &name));
        let deep = vec!["x"; 2000].join("/");
        assert!(!path_matches(&format!("{}y", "**/".repeat(40)), &deep));
        assert!(path_matches("**/x/**/x", &deep));
    }

    #[test]
    fn go_match_rules() {
        assert!(segment_matches("*.txt", "a.txt"));
        assert!(!segment_matches("*.txt", "a.txt.bak"));
        assert!(segment_matches("a?c", "abc"));
        assert!(segment_matches("[a-c]x", "bx"));
        assert!(!segment_matches("[^a-c]x", "bx"));
        assert!(segment_matches("\\*", "*"));
        assert!(path_matches("src/*.rs", "src/main.rs"));
        assert!(!path_matches("src/*.rs", "src/a/main.rs"));
        assert!(path_matches("**/*.rs", "src/a/main.rs"));
        assert!(path_matches("**/*.rs", "main.rs"));
    }

    #[test]
    fn excluded_directories_with_exceptions_are_walked() {
        let i = Ignore::parse("ignored\n!ignored/subdir/keep\nother\n");
        assert!(!i.skips("ignored", true), "an exception lies inside");
        assert!(!i.skips("ignored/subdir", true));
        assert!(i.skips("ignored/subdir/file", false));
        assert!(!i.skips("ignored/subdir/keep", false));
        assert!(i.skips("other", true), "no exception inside: skipped whole");
    }

    #[test]
    fn dockerignore_rules() {
        let i = Ignore::parse("# comment\n*.log\n!keep.log\nbuild/\n/secret\n**/tmp\n");
        assert!(i.excludes("a.log"));
        assert!(!i.excludes("keep.log"));
        assert!(
            i.excludes("build/out/x.o"),
            "a matched directory covers its files"
        );
        assert!(i.excludes("secret"));
        assert!(i.excludes("a/b/tmp/f"));
        assert!(!i.excludes("src/main.rs"));
        assert!(!i.excludes("sub/a.log"), "*.log is for the top level only");
    }
}
