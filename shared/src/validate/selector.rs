//! Label selectors: syntax checks and matching.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::error::ConfigError;

/// Label map of an object.
pub type Labels = BTreeMap<String, String>;

/// Why a label selector (or a label key/value in it) was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// A label key breaking the `[prefix/]name` rules.
    #[error("invalid label key {key:?}: {reason}")]
    InvalidKey {
        /// The key as written.
        key: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A label value breaking the value rules.
    #[error("invalid label value {value:?}: {reason}")]
    InvalidValue {
        /// The value as written.
        value: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// An operator other than In, NotIn, Exists, DoesNotExist.
    #[error("unknown operator {operator:?}: use In, NotIn, Exists or DoesNotExist")]
    UnknownOperator {
        /// The operator as written.
        operator: String,
    },
    /// In/NotIn without values.
    #[error("operator {operator} needs at least one value")]
    ValuesRequired {
        /// The operator.
        operator: &'static str,
    },
    /// Exists/DoesNotExist with values.
    #[error("operator {operator} takes no values")]
    ValuesForbidden {
        /// The operator.
        operator: &'static str,
    },
}

/// Checks a label key: an optional DNS-subdomain prefix (≤ 253 chars) and `/`, then a name
/// of 1–63 alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric.
pub fn validate_label_key(key: &str) -> Result<(), SelectorError> {
    let err = |reason| SelectorError::InvalidKey {
        key: key.to_owned(),
        reason,
    };
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Err(err("empty prefix before '/'"));
        }
        if !is_dns_subdomain(prefix) {
            return Err(err(
                "prefix must be a DNS subdomain (lowercase alphanumerics, '-', '.'; at most 253 characters)",
            ));
        }
    }
    if name.is_empty() {
        return Err(err("name part must not be empty"));
    }
    if !is_label_name(name) {
        return Err(err(
            "name part must be at most 63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric",
        ));
    }
    Ok(())
}

/// Checks a label value: empty, or 1–63 alphanumerics, `-`, `_`, `.`, starting and ending
/// alphanumeric.
pub fn validate_label_value(value: &str) -> Result<(), SelectorError> {
    if value.is_empty() || is_label_name(value) {
        Ok(())
    } else {
        Err(SelectorError::InvalidValue {
            value: value.to_owned(),
            reason: "must be at most 63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric",
        })
    }
}

fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// DNS-1123 label: 1–63 lowercase alphanumerics or `-`, starting and ending alphanumeric.
pub(crate) fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && is_lower_alnum(b[0])
        && is_lower_alnum(b[b.len() - 1])
        && b.iter().all(|c| is_lower_alnum(*c) || *c == b'-')
}

/// DNS-1123 subdomain: dot-separated labels, at most 253 characters.
pub(crate) fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn is_lower_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// One requirement of a parsed selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    /// The label is present with one of the values.
    In {
        /// Label key.
        key: String,
        /// Allowed values.
        values: BTreeSet<String>,
    },
    /// The label is absent, or present with none of the values.
    NotIn {
        /// Label key.
        key: String,
        /// Forbidden values.
        values: BTreeSet<String>,
    },
    /// The label is present.
    Exists {
        /// Label key.
        key: String,
    },
    /// The label is absent.
    DoesNotExist {
        /// Label key.
        key: String,
    },
}

impl Requirement {
    /// Whether `labels` satisfy the requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Self::In { key, values } => labels.get(key).is_some_and(|v| values.contains(v)),
            Self::NotIn { key, values } => labels.get(key).is_none_or(|v| !values.contains(v)),
            Self::Exists { key } => labels.contains_key(key),
            Self::DoesNotExist { key } => !labels.contains_key(key),
        }
    }
}

/// A validated label selector: all requirements must hold (`matchLabels` become `In`).
/// The empty selector matches every object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParsedSelector {
    /// The requirements, ANDed.
    pub requirements: Vec<Requirement>,
}

impl ParsedSelector {
    /// Validates `selector`, reporting problems under `path` (e.g. `spec.nodeSelectors[0]`).
    pub fn parse(selector: &LabelSelector, path: &str) -> Result<Self, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut requirements = Vec::new();
        for (key, value) in selector.match_labels.iter().flatten() {
            let at = format!("{path}.matchLabels[{key}]");
            let mut ok = true;
            if let Err(e) = validate_label_key(key) {
                errors.push(ConfigError::new(&at, e));
                ok = false;
            }
            if let Err(e) = validate_label_value(value) {
                errors.push(ConfigError::new(&at, e));
                ok = false;
            }
            if ok {
                requirements.push(Requirement::In {
                    key: key.clone(),
                    values: BTreeSet::from([value.clone()]),
                });
            }
        }
        for (i, expr) in selector.match_expressions.iter().flatten().enumerate() {
            let at = format!("{path}.matchExpressions[{i}]");
            let before = errors.len();
            if let Err(e) = validate_label_key(&expr.key) {
                errors.push(ConfigError::new(format!("{at}.key"), e));
            }
            let values = expr.values.clone().unwrap_or_default();
            for (j, v) in values.iter().enumerate() {
                if let Err(e) = validate_label_value(v) {
                    errors.push(ConfigError::new(format!("{at}.values[{j}]"), e));
                }
            }
            let key = expr.key.clone();
            let set: BTreeSet<String> = values.into_iter().collect();
            let op_path = format!("{at}.operator");
            let requirement = match expr.operator.as_str() {
                "In" | "NotIn" if set.is_empty() => {
                    let operator = if expr.operator == "In" { "In" } else { "NotIn" };
                    errors.push(ConfigError::new(
                        format!("{at}.values"),
                        SelectorError::ValuesRequired { operator },
                    ));
                    None
                }
                "Exists" | "DoesNotExist" if !set.is_empty() => {
                    let operator = if expr.operator == "Exists" {
                        "Exists"
                    } else {
                        "DoesNotExist"
                    };
                    errors.push(ConfigError::new(
                        format!("{at}.values"),
                        SelectorError::ValuesForbidden { operator },
                    ));
                    None
                }
                "In" => Some(Requirement::In { key, values: set }),
                "NotIn" => Some(Requirement::NotIn { key, values: set }),
                "Exists" => Some(Requirement::Exists { key }),
                "DoesNotExist" => Some(Requirement::DoesNotExist { key }),
                other => {
                    errors.push(ConfigError::new(
                        op_path,
                        SelectorError::UnknownOperator {
                            operator: other.to_owned(),
                        },
                    ));
                    None
                }
            };
            if errors.len() == before {
                requirements.extend(requirement);
            }
        }
        if errors.is_empty() {
            Ok(Self { requirements })
        } else {
            Err(errors)
        }
    }

    /// A selector requiring exactly these labels (each becomes a one-value `In`), for
    /// building selectors in code rather than from a manifest.
    pub fn labels<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            requirements: pairs
                .into_iter()
                .map(|(k, v)| Requirement::In {
                    key: k.into(),
                    values: BTreeSet::from([v.into()]),
                })
                .collect(),
        }
    }

    /// Adds a requirement.
    pub fn and(mut self, requirement: Requirement) -> Self {
        self.requirements.push(requirement);
        self
    }

    /// Whether an object with `labels` is selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether the selector selects everything.
    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }
}

/// Validates a list of selectors at `path` (`spec.nodeSelectors`), each at `path[i]`.
pub fn parse_selectors(
    selectors: &[LabelSelector],
    path: &str,
    errors: &mut Vec<ConfigError>,
) -> Vec<ParsedSelector> {
    selectors
        .iter()
        .enumerate()
        .filter_map(
            |(i, s)| match ParsedSelector::parse(s, &format!("{path}[{i}]")) {
                Ok(p) => Some(p),
                Err(e) => {
                    errors.extend(e);
                    None
                }
            },
        )
        .collect()
}

/// The selector-list rule used by every `...Selectors` field: an empty list selects every
/// object, otherwise an object is selected when any one selector matches it.
pub fn any_selector_matches(
    selectors: &[ParsedSelector],
    labels: &BTreeMap<String, String>,
) -> bool {
    selectors.is_empty() || selectors.iter().any(|s| s.matches(labels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.to_owned(),
            operator: op.to_owned(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| (*v).to_owned()).collect()),
        }
    }

    #[test]
    fn label_key_table() {
        let long_name = "a".repeat(63);
        let too_long = "a".repeat(64);
        let ok = [
            "app",
            "kubernetes.io/hostname",
            "node-role.kubernetes.io/control-plane",
            "A_b.c-D",
            long_name.as_str(),
            "example.com/x",
        ];
        for k in ok {
            assert_eq!(validate_label_key(k), Ok(()), "{k}");
        }
        let bad = [
            "",
            "/app",
            "a/",
            "-app",
            "app-",
            "a b",
            "Example.com/x",
            "a/b/c",
            too_long.as_str(),
            "a..b/x",
        ];
        for k in bad {
            assert!(
                matches!(validate_label_key(k), Err(SelectorError::InvalidKey { .. })),
                "{k:?} accepted"
            );
        }
        for v in ["", "x", "v1.2_3-a", long_name.as_str()] {
            assert_eq!(validate_label_value(v), Ok(()), "{v}");
        }
        for v in ["-x", "x-", "a/b", "a b", too_long.as_str()] {
            assert!(validate_label_value(v).is_err(), "{v:?} accepted");
        }
    }

    #[test]
    fn selector_validation_reports_every_problem_with_paths() {
        let sel = LabelSelector {
            match_labels: Some(
                [
                    ("bad key".to_owned(), "ok".to_owned()),
                    ("zone".to_owned(), "-bad".to_owned()),
                ]
                .into(),
            ),
            match_expressions: Some(vec![
                expr("tier", "In", &[]),
                expr("tier", "Exists", &["x"]),
                expr("tier", "Equals", &["x"]),
                expr("tier", "NotIn", &["a", "b"]),
            ]),
        };
        let errs = ParsedSelector::parse(&sel, "spec.nodeSelectors[0]").unwrap_err();
        let shown: Vec<String> = errs.iter().map(|e| e.path.clone()).collect();
        assert_eq!(
            shown,
            [
                "spec.nodeSelectors[0].matchLabels[bad key]",
                "spec.nodeSelectors[0].matchLabels[zone]",
                "spec.nodeSelectors[0].matchExpressions[0].values",
                "spec.nodeSelectors[0].matchExpressions[1].values",
                "spec.nodeSelectors[0].matchExpressions[2].operator",
            ]
        );
    }

    #[test]
    fn matching_semantics() {
        let sel = ParsedSelector::parse(
            &LabelSelector {
                match_labels: Some([("app".to_owned(), "web".to_owned())].into()),
                match_expressions: Some(vec![
                    expr("tier", "NotIn", &["db"]),
                    expr("zone", "In", &["a", "b"]),
                    expr("gpu", "DoesNotExist", &[]),
                    expr("team", "Exists", &[]),
                ]),
            },
            "s",
        )
        .unwrap();
        let base = [("app", "web"), ("zone", "a"), ("team", "x")];
        assert!(sel.matches(&labels(&base)));
        assert!(sel.matches(&labels(&[
            ("app", "web"),
            ("zone", "b"),
            ("team", ""),
            ("tier", "fe")
        ])));
        assert!(!sel.matches(&labels(&[
            ("app", "web"),
            ("zone", "a"),
            ("team", "x"),
            ("tier", "db")
        ])));
        assert!(!sel.matches(&labels(&[("app", "web"), ("zone", "c"), ("team", "x")])));
        assert!(!sel.matches(&labels(&[
            ("app", "web"),
            ("zone", "a"),
            ("team", "x"),
            ("gpu", "1")
        ])));
        assert!(!sel.matches(&labels(&[("app", "web"), ("zone", "a")])));
        assert!(!sel.matches(&labels(&[("app", "api"), ("zone", "a"), ("team", "x")])));

        let everything = ParsedSelector::parse(&LabelSelector::default(), "s").unwrap();
        assert!(everything.is_everything());
        assert!(everything.matches(&labels(&[])));
        assert!(any_selector_matches(&[], &labels(&[])));
        assert!(!any_selector_matches(
            std::slice::from_ref(&sel),
            &labels(&[])
        ));
        assert!(any_selector_matches(&[sel, everything], &labels(&[])));
    }

    #[test]
    fn built_selector_table() {
        let key = |k: &str| k.to_owned();
        let set = |v: &str| BTreeSet::from([v.to_owned()]);
        let team_a = ParsedSelector::labels([("team", "a")]);
        let not_dev = ParsedSelector::default().and(Requirement::NotIn {
            key: key("env"),
            values: set("dev"),
        });
        let has_tier = ParsedSelector::default().and(Requirement::Exists { key: key("tier") });
        let no_tier = ParsedSelector::default().and(Requirement::DoesNotExist { key: key("tier") });
        let env_in = ParsedSelector::default().and(Requirement::In {
            key: key("env"),
            values: set("prod"),
        });
        type Case<'a> = (&'a ParsedSelector, &'a [(&'a str, &'a str)], bool);
        let cases: &[Case] = &[
            (&ParsedSelector::default(), &[], true),
            (&team_a, &[("team", "a"), ("x", "y")], true),
            (&team_a, &[("team", "b")], false),
            (&team_a, &[], false),
            (&not_dev, &[], true),
            (&not_dev, &[("env", "dev")], false),
            (&not_dev, &[("env", "prod")], true),
            (&has_tier, &[("tier", "")], true),
            (&has_tier, &[], false),
            (&no_tier, &[], true),
            (&no_tier, &[("tier", "web")], false),
            (&env_in, &[("env", "prod")], true),
            (&env_in, &[], false),
        ];
        for (i, (sel, l, want)) in cases.iter().enumerate() {
            assert_eq!(sel.matches(&labels(l)), *want, "case {i}");
        }
    }
}
