//! Glob patterns for names in policies: `*` (any run, including none), `?` (one character),
//! `[abc]`, `[a-z]`, `[!abc]` classes, `\` escapes. `*` crosses `/` and `:` — tool names and
//! resource URIs are not file paths.
//!
//! A small matcher of our own rather than a regex-backed glob crate: compiling 10,000 policies
//! means compiling tens of thousands of patterns, and regex construction dominated compile time
//! (DESIGN §9 asks for 10,000 CRs in ≤ 200 ms). Matching is linear-time backtracking over `*`.

/// One element of a pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Literal(char),
    AnyChar,
    AnyRun,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Token {
    fn matches(&self, c: char) -> bool {
        match self {
            Token::Literal(l) => *l == c,
            Token::AnyChar => true,
            Token::AnyRun => unreachable!("runs are handled by the matcher"),
            Token::Class { negated, ranges } => {
                ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated
            }
        }
    }
}

/// A compiled glob that remembers its source.
#[derive(Clone, Debug)]
pub struct Pattern {
    source: String,
    /// `None` when the pattern has no wildcards: then it matches only itself.
    tokens: Option<Vec<Token>>,
}

impl Pattern {
    /// Compile a pattern, or explain why it is invalid.
    pub fn new(source: &str) -> Result<Self, String> {
        if source.is_empty() {
            return Err("an empty pattern matches nothing".to_string());
        }
        let tokens = parse(source).map_err(|e| format!("invalid glob {source:?}: {e}"))?;
        let literal = tokens.iter().all(|t| matches!(t, Token::Literal(_)));
        Ok(Self {
            source: source.to_string(),
            tokens: (!literal || source.contains('\\')).then_some(tokens),
        })
    }

    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        match &self.tokens {
            None => self.source == name,
            Some(tokens) => glob_match(tokens, name),
        }
    }

    /// The literal name, when the pattern has no wildcards (usable as an index key).
    pub fn literal(&self) -> Option<&str> {
        self.tokens.is_none().then_some(self.source.as_str())
    }

    /// For `*@domain` patterns (no other wildcard): the domain, for indexing emails.
    pub fn email_domain(&self) -> Option<&str> {
        let domain = self.source.strip_prefix("*@")?;
        (!domain.is_empty() && !domain.contains(['*', '?', '[', ']', '\\'])).then_some(domain)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

fn parse(source: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => {
                if out.last() != Some(&Token::AnyRun) {
                    out.push(Token::AnyRun);
                }
            }
            '?' => out.push(Token::AnyChar),
            '\\' => match chars.next() {
                Some(e) => out.push(Token::Literal(e)),
                None => return Err("trailing '\\' escapes nothing".to_string()),
            },
            '[' => {
                let negated = matches!(chars.peek(), Some('!' | '^'));
                if negated {
                    chars.next();
                }
                let mut ranges = Vec::new();
                let mut first = true;
                loop {
                    let Some(c) = chars.next() else {
                        return Err("unclosed character class; missing ']'".to_string());
                    };
                    if c == ']' && !first {
                        break;
                    }
                    first = false;
                    let lo = if c == '\\' {
                        chars.next().ok_or("trailing '\\' escapes nothing")?
                    } else {
                        c
                    };
                    if chars.peek() == Some(&'-') {
                        chars.next();
                        match chars.next() {
                            Some(']') => {
                                ranges.push((lo, lo));
                                ranges.push(('-', '-'));
                                break;
                            }
                            Some(hi) if hi >= lo => ranges.push((lo, hi)),
                            Some(hi) => return Err(format!("range {lo}-{hi} is reversed")),
                            None => return Err("unclosed character class; missing ']'".to_string()),
                        }
                    } else {
                        ranges.push((lo, lo));
                    }
                }
                out.push(Token::Class { negated, ranges });
            }
            ']' => return Err("']' without a matching '['".to_string()),
            other => out.push(Token::Literal(other)),
        }
    }
    Ok(out)
}

/// Wildcard matching with single-star backtracking: on a mismatch, the most recent `*` absorbs
/// one more character. Linear in practice, O(n·m) worst case, no allocation.
fn glob_match(tokens: &[Token], name: &str) -> bool {
    let (mut t, mut i) = (0usize, 0usize);
    let mut resume: Option<(usize, usize)> = None;
    loop {
        if t < tokens.len() {
            if tokens[t] == Token::AnyRun {
                resume = Some((t + 1, i));
                t += 1;
                continue;
            }
            if let Some(c) = name[i..].chars().next()
                && tokens[t].matches(c)
            {
                i += c.len_utf8();
                t += 1;
                continue;
            }
        } else if i == name.len() {
            return true;
        }
        match resume {
            Some((after_star, from)) if from < name.len() => {
                let c = name[from..].chars().next().expect("not at end");
                let next = from + c.len_utf8();
                resume = Some((after_star, next));
                t = after_star;
                i = next;
            }
            _ => return false,
        }
    }
}

/// A set of patterns: matches when any does.
#[derive(Clone, Debug, Default)]
pub struct PatternList(pub Vec<Pattern>);

impl PatternList {
    /// Compile every pattern, collecting all errors.
    pub fn new(sources: &[String]) -> Result<Self, Vec<String>> {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for s in sources {
            match Pattern::new(s) {
                Ok(p) => out.push(p),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(Self(out))
        } else {
            Err(errors)
        }
    }

    /// Whether any pattern matches.
    pub fn matches(&self, name: &str) -> bool {
        self.0.iter().any(|p| p.matches(name))
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        Pattern::new(p).unwrap().matches(s)
    }

    #[test]
    fn star_matches_runs_and_crosses_separators() {
        assert!(m("repo_*", "repo_read"));
        assert!(m("repo_*", "repo_"));
        assert!(!m("repo_*", "issue_read"));
        assert!(m("file:///docs/*", "file:///docs/a/b.md"));
        assert!(m("*", ""));
        assert!(m("a*b*c", "aXXbYYbZc"));
        assert!(!m("a*b*c", "aXXbYYbZ"));
        assert!(m("*.md", "README.md"));
        assert!(m("**x", "yyx"));
    }

    #[test]
    fn question_mark_and_classes() {
        assert!(m("get_?", "get_a"));
        assert!(!m("get_?", "get_ab"));
        assert!(m("v[0-9]", "v7"));
        assert!(!m("v[0-9]", "vx"));
        assert!(m("v[!0-9]", "vx"));
        assert!(m("[]x]", "]"));
        assert!(m("a[-b]", "a-"));
        assert!(m("a[b-]", "a-"));
        assert!(m("日本*", "日本語"));
        assert!(m("?語", "本語"));
    }

    #[test]
    fn escapes_make_wildcards_literal() {
        assert!(m(r"what\?", "what?"));
        assert!(!m(r"what\?", "whatx"));
        assert!(m(r"\*", "*"));
        assert!(!m(r"\*", "x"));
    }

    #[test]
    fn literals_are_exact_and_indexable() {
        let p = Pattern::new("get_me").unwrap();
        assert_eq!(p.literal(), Some("get_me"));
        assert!(p.matches("get_me"));
        assert!(!p.matches("get_me2"));
        assert_eq!(Pattern::new("get_*").unwrap().literal(), None);
        assert_eq!(
            Pattern::new("*@example.com").unwrap().email_domain(),
            Some("example.com")
        );
        assert_eq!(
            Pattern::new("*@*.example.com").unwrap().email_domain(),
            None
        );
    }

    #[test]
    fn invalid_globs_explain_themselves() {
        let err = Pattern::new("repo_[").unwrap_err();
        assert!(
            err.contains("repo_[") && err.contains("missing ']'"),
            "{err}"
        );
        assert!(Pattern::new("").is_err());
        assert!(
            Pattern::new("a]")
                .unwrap_err()
                .contains("without a matching")
        );
        assert!(Pattern::new("[z-a]").unwrap_err().contains("reversed"));
        assert!(Pattern::new("x\\").unwrap_err().contains("escapes nothing"));
    }
}
