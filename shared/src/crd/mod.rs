//! The `ferrolb.io/v1alpha1` custom resources and the rendering of their CRDs.

mod advertisement;
mod common;
mod peer;
mod pool;
mod render;
mod speaker_status;

pub use advertisement::{BGPAdvertisement, BGPAdvertisementSpec, BGPAdvertisementStatus};
pub use common::{
    CONDITION_OVERLAPS, CONDITION_VALID, Conditions, REASON_ACCEPTED, REASON_INVALID_SPEC,
    REASON_NO_OVERLAP, REASON_OVERLAPS_POOL, SecretKeyReference, find_condition, set_condition,
};
pub use peer::{BGPPeer, BGPPeerSpec, BGPPeerStatus};
pub use pool::{IPAddressPool, IPAddressPoolSpec, IPAddressPoolStatus, ServiceAllocation};
pub use render::{
    CRD_FILE_SUFFIX, CrdFile, Drift, RenderError, all_crds, crd_drift, render_crd_files,
};
pub use speaker_status::{
    CONDITION_SESSIONS_ESTABLISHED, PeerSessionStatus, REASON_ALL_ESTABLISHED, REASON_NO_SESSIONS,
    REASON_SESSIONS_DOWN, SessionState, SpeakerStatus, SpeakerStatusSpec, SpeakerStatusStatus,
};
