//! Glob patterns for names in policies: `*` (any run), `?` (one character), `[abc]` classes.
//! `*` crosses `/` and `:`: tool names and resource URIs are not paths.

use globset::{Glob, GlobBuilder, GlobMatcher};

/// A compiled glob that remembers its source.
#[derive(Clone, Debug)]
pub struct Pattern {
    source: String,
    exact: bool,
    matcher: GlobMatcher,
}

impl Pattern {
    /// Compile a pattern, or explain why it is invalid.
    pub fn new(source: &str) -> Result<Self, String> {
        if source.is_empty() {
            return Err("an empty pattern matches nothing".to_string());
        }
        let glob: Glob = GlobBuilder::new(source)
            .literal_separator(false)
            .backslash_escape(true)
            .build()
            .map_err(|e| format!("invalid glob {source:?}: {}", e.kind()))?;
        Ok(Self {
            source: source.to_string(),
            exact: !source.contains(['*', '?', '[', ']', '{', '}', '\\']),
            matcher: glob.compile_matcher(),
        })
    }

    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        if self.exact {
            self.source == name
        } else {
            self.matcher.is_match(name)
        }
    }

    /// The literal name, when the pattern has no wildcards (usable as an index key).
    pub fn literal(&self) -> Option<&str> {
        self.exact.then_some(self.source.as_str())
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
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

    #[test]
    fn star_crosses_separators() {
        let p = Pattern::new("repo_*").unwrap();
        assert!(p.matches("repo_read"));
        assert!(!p.matches("issue_read"));
        let p = Pattern::new("file:///docs/*").unwrap();
        assert!(p.matches("file:///docs/a/b.md"));
    }

    #[test]
    fn literals_are_exact() {
        let p = Pattern::new("get_me").unwrap();
        assert_eq!(p.literal(), Some("get_me"));
        assert!(p.matches("get_me"));
        assert!(!p.matches("get_me2"));
    }

    #[test]
    fn invalid_globs_explain_themselves() {
        let err = Pattern::new("repo_[").unwrap_err();
        assert!(err.contains("repo_["), "{err}");
        assert!(Pattern::new("").is_err());
    }
}
