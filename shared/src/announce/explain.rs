//! "Why is / isn't this Service announced from this node": the view `ferrolb explain` prints.

use std::fmt;
use std::net::IpAddr;

use super::decide::{Decisions, Outcome, PeerName};
use super::reason::Reason;
use crate::allocator::ServiceKey;

/// One line of an [`Explanation`]: an address towards a peer, or a Service-wide reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExplainLine {
    /// The Service address; `None` when the Service has none ([`Reason::NoIpAssigned`]).
    pub ip: Option<IpAddr>,
    /// The peer; `None` when no peer exists ([`Reason::NoPeers`]) or there is no address.
    pub peer: Option<PeerName>,
    /// Announced (with routes) or the reason.
    pub outcome: Outcome,
}

/// Per address and peer, whether one node announces a Service and, if not, why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// The node.
    pub node: String,
    /// The Service.
    pub service: ServiceKey,
    /// Lines by address, then peer name; never empty.
    pub lines: Vec<ExplainLine>,
}

/// Explains one Service from [`Decisions`]; `None` when the Service was not in the
/// snapshot (not a LoadBalancer Service of ours, or unknown).
pub fn explain(decisions: &Decisions, service: &ServiceKey) -> Option<Explanation> {
    let decision = decisions.services.get(service)?;
    let mut lines = Vec::new();
    if decision.ips.is_empty() {
        lines.push(ExplainLine {
            ip: None,
            peer: None,
            outcome: Outcome::NotAnnounced(Reason::NoIpAssigned),
        });
    }
    for d in &decision.ips {
        if d.peers.is_empty() {
            lines.push(ExplainLine {
                ip: Some(d.ip),
                peer: None,
                outcome: Outcome::NotAnnounced(Reason::NoPeers),
            });
        }
        for (peer, outcome) in &d.peers {
            lines.push(ExplainLine {
                ip: Some(d.ip),
                peer: Some(peer.clone()),
                outcome: outcome.clone(),
            });
        }
    }
    Some(Explanation {
        node: decisions.node.clone(),
        service: service.clone(),
        lines,
    })
}

impl Decisions {
    /// See [`explain`].
    pub fn explain(&self, service: &ServiceKey) -> Option<Explanation> {
        explain(self, service)
    }
}

/// `high:low` for a standard community.
fn community(c: u32) -> String {
    format!("{}:{}", c >> 16, c & 0xFFFF)
}

impl fmt::Display for ExplainLine {
    /// `192.0.2.10 -> peer tor-a: announced 192.0.2.0/24 [communities 65000:100]
    /// (advertisements: ad-a)` or `... -> peer tor-b: not announced: noLocalEndpoints (...)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip {
            Some(ip) => write!(f, "{ip}")?,
            None => f.write_str("-")?,
        }
        match &self.peer {
            Some(p) => write!(f, " -> peer {p}: ")?,
            None => f.write_str(": ")?,
        }
        match &self.outcome {
            Outcome::NotAnnounced(r) => write!(f, "not announced: {r} ({})", r.description()),
            Outcome::Announced(announcements) => {
                f.write_str("announced ")?;
                for (i, a) in announcements.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    let r = &a.route;
                    write!(f, "{}", r.prefix)?;
                    let mut attrs = Vec::new();
                    if let Some(nh) = r.next_hop {
                        attrs.push(format!("next-hop {nh}"));
                    }
                    if !r.communities.is_empty() {
                        let cs: Vec<String> = r.communities.iter().map(|c| community(*c)).collect();
                        attrs.push(format!("communities {}", cs.join(" ")));
                    }
                    if !r.large_communities.is_empty() {
                        let cs: Vec<String> = r
                            .large_communities
                            .iter()
                            .map(|[a, b, c]| format!("{a}:{b}:{c}"))
                            .collect();
                        attrs.push(format!("large-communities {}", cs.join(" ")));
                    }
                    if let Some(lp) = r.local_pref {
                        attrs.push(format!("local-pref {lp}"));
                    }
                    if !attrs.is_empty() {
                        write!(f, " [{}]", attrs.join("; "))?;
                    }
                    let names: Vec<&str> = a.advertisements.iter().map(|n| &**n).collect();
                    write!(f, " (advertisements: {})", names.join(", "))?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Service {} on node {}:", self.service, self.node)?;
        for line in &self.lines {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}
