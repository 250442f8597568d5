//! Fault injection (spec §8, F1–F9): request matchers and the rule table the
//! HTTP layer consults before serving a request.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Selects requests (and watches) by verb, resource, namespace, name,
/// watch-or-not and User-Agent. Unset fields match anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RequestMatcher {
    /// Kubernetes verb: get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: Option<String>,
    /// API group ("" for core).
    pub group: Option<String>,
    /// Resource plural, e.g. `services`.
    pub resource: Option<String>,
    /// Subresource, e.g. `status`.
    pub subresource: Option<String>,
    /// Namespace of the request.
    pub namespace: Option<String>,
    /// Object name of the request.
    pub name: Option<String>,
    /// Only watches (`true`) or only non-watch requests (`false`).
    pub watch: Option<bool>,
    /// Substring the User-Agent header must contain.
    pub user_agent: Option<String>,
}

impl RequestMatcher {
    /// A matcher that matches every request.
    pub fn any() -> Self {
        Self::default()
    }
    /// Restricts to a verb.
    pub fn verb(mut self, v: &str) -> Self {
        self.verb = Some(v.to_owned());
        self
    }
    /// Restricts to an API group ("" = core).
    pub fn group(mut self, g: &str) -> Self {
        self.group = Some(g.to_owned());
        self
    }
    /// Restricts to a resource plural.
    pub fn resource(mut self, r: &str) -> Self {
        self.resource = Some(r.to_owned());
        self
    }
    /// Restricts to a subresource (e.g. `status`).
    pub fn subresource(mut self, s: &str) -> Self {
        self.subresource = Some(s.to_owned());
        self
    }
    /// Restricts to a namespace.
    pub fn namespace(mut self, ns: &str) -> Self {
        self.namespace = Some(ns.to_owned());
        self
    }
    /// Restricts to an object name.
    pub fn name(mut self, n: &str) -> Self {
        self.name = Some(n.to_owned());
        self
    }
    /// Restricts to watches (`true`) or non-watch requests (`false`).
    pub fn watch(mut self, w: bool) -> Self {
        self.watch = Some(w);
        self
    }
    /// Restricts to User-Agents containing `ua`.
    pub fn user_agent(mut self, ua: &str) -> Self {
        self.user_agent = Some(ua.to_owned());
        self
    }

    /// Evaluates the matcher against request attributes.
    pub fn matches(&self, r: &RequestAttrs) -> bool {
        fn eq(want: &Option<String>, got: &str) -> bool {
            want.as_deref().is_none_or(|w| w == got)
        }
        eq(&self.verb, &r.verb)
            && eq(&self.group, &r.group)
            && eq(&self.resource, &r.resource)
            && eq(&self.subresource, r.subresource.as_deref().unwrap_or(""))
            && eq(&self.namespace, r.namespace.as_deref().unwrap_or(""))
            && eq(&self.name, r.name.as_deref().unwrap_or(""))
            && self.watch.is_none_or(|w| w == r.watch)
            && self
                .user_agent
                .as_deref()
                .is_none_or(|u| r.user_agent.contains(u))
    }
}

/// The attributes of one API request that matchers see.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestAttrs {
    /// Kubernetes verb.
    pub verb: String,
    /// API group.
    pub group: String,
    /// Resource plural.
    pub resource: String,
    /// Subresource, if any.
    pub subresource: Option<String>,
    /// Namespace, if any.
    pub namespace: Option<String>,
    /// Object name, if any.
    pub name: Option<String>,
    /// Is this a watch?
    pub watch: bool,
    /// The User-Agent header.
    pub user_agent: String,
}

/// What a rule does to a matching request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    Fail {
        code: u16,
        reason: Option<String>,
        message: Option<String>,
        retry_after: Option<u64>,
    },
    Conflict,
    Forbid,
    Delay {
        duration: Duration,
        jitter: Duration,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub matcher: RequestMatcher,
    pub action: Action,
    /// None = until cleared.
    pub remaining: Option<u32>,
}

/// The active rules.
#[derive(Debug, Default)]
pub(crate) struct FaultTable {
    pub rules: Vec<Rule>,
}

/// Verdict for one request.
#[derive(Debug, Default)]
pub(crate) struct Verdict {
    pub delay: Duration,
    pub fail: Option<Action>,
}

impl FaultTable {
    /// Consumes matching rules: delays add up, the first failure wins.
    pub(crate) fn check(&mut self, r: &RequestAttrs, rng: &mut u64) -> Verdict {
        let mut v = Verdict::default();
        for rule in &mut self.rules {
            if rule.remaining == Some(0) || !rule.matcher.matches(r) {
                continue;
            }
            match &rule.action {
                Action::Delay { duration, jitter } => {
                    let j = if jitter.is_zero() {
                        Duration::ZERO
                    } else {
                        *rng ^= *rng << 13;
                        *rng ^= *rng >> 7;
                        *rng ^= *rng << 17;
                        Duration::from_nanos(
                            *rng % (jitter.as_nanos().min(u128::from(u64::MAX)) as u64).max(1),
                        )
                    };
                    v.delay += *duration + j;
                }
                a => {
                    if v.fail.is_some() {
                        continue;
                    }
                    v.fail = Some(a.clone());
                }
            }
            if let Some(n) = rule.remaining.as_mut() {
                *n -= 1;
            }
        }
        self.rules.retain(|r| r.remaining != Some(0));
        v
    }
}
