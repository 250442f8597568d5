//! What the docs name: inline code spans of Markdown, sorted into flags, environment
//! variables, metrics, CRD fields and annotations, so a test can check each exists.

use std::collections::BTreeSet;

use crate::metrics::ferrolb_metric_names;

/// Inline code spans (single backticks) outside fenced code blocks.
pub fn code_spans(markdown: &str) -> Vec<String> {
    let mut spans = Vec::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut parts = line.split('`');
        // Text before the first backtick.
        parts.next();
        while let (Some(code), Some(_after)) = (parts.next(), parts.next()) {
            spans.push(code.to_owned());
        }
    }
    spans
}

/// The names one document mentions, by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mentions {
    /// `--flag` spans (a span that is just a flag, optionally with a value).
    pub flags: BTreeSet<String>,
    /// `FERROLB_…` and other upper-case environment variables.
    pub env: BTreeSet<String>,
    /// `ferrolb_…` metric names.
    pub metrics: BTreeSet<String>,
    /// `spec.…` / `status.…` field paths (of ferrolb objects).
    pub fields: BTreeSet<String>,
    /// `ferrolb.io/…`, `metallb.io/…` and `metallb.universe.tf/…` annotation names.
    pub annotations: BTreeSet<String>,
}

/// Sorts the spans of one document.
pub fn mentions(markdown: &str) -> Mentions {
    let mut m = Mentions::default();
    for span in code_spans(markdown) {
        let s = span.trim();
        let first = s.split_whitespace().next().unwrap_or("");
        if first.starts_with("--") && first.len() > 2 && s.split_whitespace().count() <= 2 {
            let flag = first.split('=').next().unwrap_or(first);
            m.flags.insert(flag.to_owned());
        } else if s.starts_with("FERROLB_") && s.chars().all(|c| c.is_ascii_uppercase() || c == '_')
        {
            m.env.insert(s.to_owned());
        } else if (s.starts_with("spec.") || s.starts_with("status."))
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
        {
            m.fields.insert(s.to_owned());
        } else if ["ferrolb.io/", "metallb.io/", "metallb.universe.tf/"]
            .iter()
            .any(|p| s.starts_with(p))
            && !s.contains(' ')
            && !is_api_version(s)
        {
            m.annotations.insert(s.to_owned());
        }
        // A Rust path (`ferrolb_shared::…`) is not a metric; a bare prefix (`ferrolb_…`)
        // names no metric either.
        if !s.contains("::") {
            m.metrics.extend(
                ferrolb_metric_names(s)
                    .into_iter()
                    .filter(|n| !n.ends_with('_')),
            );
        }
    }
    m
}

/// `group/v1`, `group/v1beta2`, … : an apiVersion, not an annotation.
fn is_api_version(s: &str) -> bool {
    s.split_once('/').is_some_and(|(_, v)| {
        v.strip_prefix('v')
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_sorted_by_kind_and_code_blocks_are_skipped() {
        let md = "Use `--lease-duration 15s` (env `FERROLB_LEASE_DURATION`), see \
                  `ferrolb_bgp_session_up{peer}` and `spec.peerASN`; annotate with \
                  `ferrolb.io/address-pool`, apiVersion `ferrolb.io/v1alpha1` or `metallb.io/v1beta2`, \
                  the crate `ferrolb_shared::announce`, the prefix `ferrolb_`.\n\
                  ```sh\nhelm install --bogus `--not-a-flag`\n```\n\
                  `helm template --include-crds` is a command, not a flag.\n";
        let m = mentions(md);
        assert_eq!(
            m.flags.into_iter().collect::<Vec<_>>(),
            ["--lease-duration"]
        );
        assert_eq!(
            m.env.into_iter().collect::<Vec<_>>(),
            ["FERROLB_LEASE_DURATION"]
        );
        assert_eq!(
            m.metrics.into_iter().collect::<Vec<_>>(),
            ["ferrolb_bgp_session_up"]
        );
        assert_eq!(m.fields.into_iter().collect::<Vec<_>>(), ["spec.peerASN"]);
        assert_eq!(
            m.annotations.into_iter().collect::<Vec<_>>(),
            ["ferrolb.io/address-pool"]
        );
    }
}
