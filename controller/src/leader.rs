//! Leader election on a `coordination.k8s.io/v1` Lease.
//!
//! Safety comes from three rules, in this order of importance:
//! 1. Every Lease write is a compare-and-set on the `resourceVersion` just read, so two
//!    replicas racing for the same Lease cannot both win.
//! 2. A leader that has not renewed for `renew_deadline` considers itself a follower, even if
//!    its renewal request is still hanging; `renew_deadline < lease_duration`, so it stops
//!    before anyone else may take over. [`Leadership::is_leader`] checks that deadline against
//!    the clock on every call, so it holds even when the elector task is starved.
//! 3. Expiry of someone else's Lease is judged by *our* monotonic clock: the Lease is free once
//!    its record has not changed for `lease_duration` since we first saw that record, which
//!    makes clock skew between replicas harmless.
//!
//! On graceful shutdown the leader clears `holderIdentity`, so a standby takes over at its
//! next retry instead of waiting for expiry.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Settings of one elector.
#[derive(Clone, Debug)]
pub struct LeaderConfig {
    /// Lease name.
    pub lease_name: String,
    /// Lease namespace.
    pub namespace: String,
    /// This replica's `holderIdentity`.
    pub identity: String,
    /// How long a Lease stays valid after its last renewal.
    pub lease_duration: Duration,
    /// A leader that could not renew for this long steps down.
    pub renew_deadline: Duration,
    /// Interval between attempts.
    pub retry_period: Duration,
}

/// This replica's view of leadership.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaderState {
    /// Someone else leads, or nobody does yet.
    Standby,
    /// We lead until `until` unless we renew before then.
    Leading {
        /// Last successful renewal plus the renew deadline.
        until: Instant,
    },
    /// Leader election is disabled: this replica always leads.
    Always,
}

/// A cheap, cloneable handle that answers "may I write now?".
#[derive(Clone, Debug)]
pub struct Leadership {
    rx: watch::Receiver<LeaderState>,
}

impl Leadership {
    /// A handle that always leads (leader election disabled).
    pub fn always() -> Self {
        let (_tx, rx) = watch::channel(LeaderState::Always);
        Leadership { rx }
    }

    /// Whether this replica may write right now.
    pub fn is_leader(&self) -> bool {
        match *self.rx.borrow() {
            LeaderState::Standby => false,
            LeaderState::Leading { until } => Instant::now() < until,
            LeaderState::Always => true,
        }
    }

    /// Waits until the state changes (also on every renewal), or forever once the elector
    /// has stopped.
    pub async fn changed(&mut self) {
        if self.rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// The instant leadership lapses unless renewed, if leading with a deadline.
    pub fn deadline(&self) -> Option<Instant> {
        match *self.rx.borrow() {
            LeaderState::Leading { until } => Some(until),
            _ => None,
        }
    }
}

/// What a Lease write can fail with.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// Reading the Lease failed.
    #[error("reading Lease {name}: {source}")]
    Get {
        /// Lease name.
        name: String,
        /// Cause.
        #[source]
        source: kube::Error,
    },
    /// Creating, renewing, taking over or releasing the Lease failed (not a lost race).
    #[error("writing Lease {name}: {source}")]
    Write {
        /// Lease name.
        name: String,
        /// Cause.
        #[source]
        source: kube::Error,
    },
    /// The request did not answer in time.
    #[error("Lease request timed out")]
    Timeout,
}

/// The record we last saw on someone else's Lease and when we first saw it.
#[derive(Debug)]
struct Observed {
    resource_version: Option<String>,
    since: Instant,
}

/// Contends for a Lease and publishes the result as a [`Leadership`].
pub struct LeaderElector {
    api: Api<Lease>,
    cfg: LeaderConfig,
    tx: watch::Sender<LeaderState>,
    observed: Option<Observed>,
}

impl std::fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElector")
            .field("cfg", &self.cfg)
            .finish()
    }
}

fn is_conflict_or_exists(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

fn now_micro() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

impl LeaderElector {
    /// An elector for `cfg`, plus the handle the writers check.
    pub fn new(client: kube::Client, cfg: LeaderConfig) -> (Self, Leadership) {
        let (tx, rx) = watch::channel(LeaderState::Standby);
        let api = Api::namespaced(client, &cfg.namespace);
        (
            LeaderElector {
                api,
                cfg,
                tx,
                observed: None,
            },
            Leadership { rx },
        )
    }

    fn leading(&self) -> bool {
        matches!(*self.tx.borrow(), LeaderState::Leading { until } if Instant::now() < until)
    }

    fn set(&self, state: LeaderState) {
        let was = self.leading();
        self.tx.send_replace(state);
        let now = self.leading();
        if was != now {
            if now {
                tracing::info!(identity = %self.cfg.identity, lease = %self.cfg.lease_name, "became leader");
            } else {
                tracing::warn!(identity = %self.cfg.identity, lease = %self.cfg.lease_name, "lost leadership; stopped writing");
            }
        }
    }

    /// Runs until `shutdown` fires; then releases the Lease if held.
    pub async fn run(mut self, shutdown: CancellationToken) {
        loop {
            let attempt_started = Instant::now();
            let deadline = match *self.tx.borrow() {
                LeaderState::Leading { until } => Some(until),
                _ => None,
            };
            // A renewal must not outlive our own deadline: a hung request would otherwise
            // keep us "leading" in the eyes of a task that looks only at the state.
            let budget = self.cfg.retry_period.max(Duration::from_millis(100));
            let attempt = tokio::time::timeout(budget, self.try_acquire_or_renew());
            let result = tokio::select! {
                r = attempt => r.unwrap_or(Err(LeaderError::Timeout)),
                _ = shutdown.cancelled() => break,
            };
            match result {
                Ok(true) => self.set(LeaderState::Leading {
                    until: attempt_started + self.cfg.renew_deadline,
                }),
                Ok(false) => self.set(LeaderState::Standby),
                Err(e) => {
                    tracing::warn!(error = %e, "leader election attempt failed");
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        self.set(LeaderState::Standby);
                    }
                }
            }
            let next = attempt_started + self.cfg.retry_period;
            let step_down = match *self.tx.borrow() {
                LeaderState::Leading { until } => until,
                _ => next + Duration::from_secs(3600),
            };
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = tokio::time::sleep_until(step_down) => {
                    self.set(LeaderState::Standby);
                    tokio::time::sleep_until(next).await;
                }
                _ = shutdown.cancelled() => break,
            }
        }
        let was_leading = self.leading();
        self.set(LeaderState::Standby);
        if was_leading {
            match tokio::time::timeout(self.cfg.retry_period, self.release()).await {
                Ok(Ok(())) => tracing::info!("released leader Lease"),
                Ok(Err(e)) => tracing::warn!(error = %e, "could not release leader Lease"),
                Err(_) => tracing::warn!("releasing leader Lease timed out"),
            }
        }
    }

    /// One round: `Ok(true)` if we hold the Lease afterwards, `Ok(false)` if someone else
    /// does (or won a race against us).
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, LeaderError> {
        let name = self.cfg.lease_name.clone();
        let current = self
            .api
            .get_opt(&name)
            .await
            .map_err(|source| LeaderError::Get {
                name: name.clone(),
                source,
            })?;
        let duration_secs =
            i32::try_from(self.cfg.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX);
        let Some(mut lease) = current else {
            let now = now_micro();
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(self.cfg.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.cfg.identity.clone()),
                    lease_duration_seconds: Some(duration_secs),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(e) if is_conflict_or_exists(&e) => Ok(false),
                Err(source) => Err(LeaderError::Write { name, source }),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let ours = holder.as_deref() == Some(self.cfg.identity.as_str());
        if !ours && holder.is_some() {
            // Someone else's Lease: free only once its record has sat unchanged for its
            // duration by our clock.
            let rv = lease.metadata.resource_version.clone();
            let since = match &self.observed {
                Some(o) if o.resource_version == rv => o.since,
                _ => {
                    self.observed = Some(Observed {
                        resource_version: rv,
                        since: Instant::now(),
                    });
                    Instant::now()
                }
            };
            let their_duration = spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map(Duration::from_secs)
                .unwrap_or(self.cfg.lease_duration);
            if since.elapsed() < their_duration {
                return Ok(false);
            }
        }
        let now = now_micro();
        let mut new_spec = spec.clone();
        new_spec.renew_time = Some(now.clone());
        new_spec.lease_duration_seconds = Some(duration_secs);
        if !ours {
            new_spec.holder_identity = Some(self.cfg.identity.clone());
            new_spec.acquire_time = Some(now);
            new_spec.lease_transitions =
                Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        }
        lease.spec = Some(new_spec);
        // `replace` carries the resourceVersion we read: a concurrent writer makes this 409.
        match self
            .api
            .replace(&name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                self.observed = None;
                Ok(true)
            }
            Err(e) if is_conflict_or_exists(&e) => Ok(false),
            Err(source) => Err(LeaderError::Write { name, source }),
        }
    }

    /// Clears `holderIdentity` if we still hold the Lease.
    pub async fn release(&self) -> Result<(), LeaderError> {
        let name = self.cfg.lease_name.clone();
        let Some(mut lease) = self
            .api
            .get_opt(&name)
            .await
            .map_err(|source| LeaderError::Get {
                name: name.clone(),
                source,
            })?
        else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.cfg.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = Some(now_micro());
        match self
            .api
            .replace(&name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_conflict_or_exists(&e) => Ok(()),
            Err(source) => Err(LeaderError::Write { name, source }),
        }
    }
}
