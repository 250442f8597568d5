//! Metric names: those a scrape exposes and those a PromQL expression or a doc names.

use std::collections::BTreeSet;

/// Suffixes the exposition adds to a family name (counters, histograms).
const SAMPLE_SUFFIXES: [&str; 4] = ["_total", "_bucket", "_sum", "_count"];

/// Names of every sample in a Prometheus/OpenMetrics text exposition.
pub fn exposed_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// Every `ferrolb_…` identifier in `text` (a PromQL expression, a Markdown span, …).
pub fn ferrolb_metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("ferrolb_") {
        let start = i + pos;
        // Not the tail of a longer identifier.
        let boundary = start == 0 || {
            let c = bytes[start - 1];
            !(c.is_ascii_alphanumeric() || c == b'_')
        };
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        if boundary {
            out.insert(text[start..end].to_owned());
        }
        i = end;
    }
    out
}

/// Whether `name` is exposed, either as a sample name or as a family whose samples carry
/// one of the standard suffixes (a doc may name the histogram `x_seconds` whose samples are
/// `x_seconds_bucket` …).
pub fn is_exposed(name: &str, exposed: &BTreeSet<String>) -> bool {
    exposed.contains(name)
        || SAMPLE_SUFFIXES
            .iter()
            .any(|s| exposed.contains(&format!("{name}{s}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_expressions_and_expositions() {
        let e = "sum by (le) (rate(ferrolb_x_seconds_bucket[5m])) / max(ferrolb_pool_addresses) and not_ferrolb_y";
        assert_eq!(
            ferrolb_metric_names(e).into_iter().collect::<Vec<_>>(),
            ["ferrolb_pool_addresses", "ferrolb_x_seconds_bucket"]
        );
        let text = "# HELP ferrolb_a A.\n# TYPE ferrolb_a counter\nferrolb_a_total{k=\"v\"} 1\nferrolb_h_bucket{le=\"+Inf\"} 0\n# EOF\n";
        let names = exposed_names(text);
        assert!(is_exposed("ferrolb_a_total", &names));
        assert!(is_exposed("ferrolb_a", &names));
        assert!(is_exposed("ferrolb_h", &names));
        assert!(!is_exposed("ferrolb_b", &names));
    }
}
