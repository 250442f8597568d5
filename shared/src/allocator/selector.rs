//! A plain label selector, free of the Kubernetes API types so the allocator does not move
//! when the CRD types do. The controller converts `LabelSelector`s into this.

use std::collections::BTreeMap;

/// Label map of an object.
pub type Labels = BTreeMap<String, String>;

/// One `matchExpressions` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LabelRequirement {
    /// The label is present with one of the values.
    In(String, Vec<String>),
    /// The label is absent, or present with none of the values.
    NotIn(String, Vec<String>),
    /// The label is present.
    Exists(String),
    /// The label is absent.
    DoesNotExist(String),
}

impl LabelRequirement {
    fn matches(&self, labels: &Labels) -> bool {
        match self {
            LabelRequirement::In(k, values) => labels.get(k).is_some_and(|v| values.contains(v)),
            LabelRequirement::NotIn(k, values) => labels.get(k).is_none_or(|v| !values.contains(v)),
            LabelRequirement::Exists(k) => labels.contains_key(k),
            LabelRequirement::DoesNotExist(k) => !labels.contains_key(k),
        }
    }
}

/// `matchLabels` and `matchExpressions`, all of which must hold. The empty selector selects
/// everything, as in Kubernetes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// Labels that must be present with exactly these values.
    pub match_labels: Labels,
    /// Further requirements.
    pub match_expressions: Vec<LabelRequirement>,
}

impl LabelSelector {
    /// A selector requiring exactly these labels.
    pub fn labels<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        LabelSelector {
            match_labels: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            match_expressions: Vec::new(),
        }
    }

    /// Adds a requirement.
    pub fn and(mut self, requirement: LabelRequirement) -> Self {
        self.match_expressions.push(requirement);
        self
    }

    /// Whether `labels` satisfy the selector.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| r.matches(labels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selector_table() {
        let team_a = LabelSelector::labels([("team", "a")]);
        let not_dev =
            LabelSelector::default().and(LabelRequirement::NotIn("env".into(), vec!["dev".into()]));
        let has_tier = LabelSelector::default().and(LabelRequirement::Exists("tier".into()));
        let no_tier = LabelSelector::default().and(LabelRequirement::DoesNotExist("tier".into()));
        let env_in =
            LabelSelector::default().and(LabelRequirement::In("env".into(), vec!["prod".into()]));
        type Case<'a> = (&'a LabelSelector, &'a [(&'a str, &'a str)], bool);
        let cases: &[Case] = &[
            (&LabelSelector::default(), &[], true),
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
