//! ferrolb CRD types (`ferrolb.io/v1alpha1`), their validation, and the pure logic shared by
//! the controller and the speaker.
//!
//! - [`crd`]: the custom resources [`IPAddressPool`](crd::IPAddressPool),
//!   [`BGPPeer`](crd::BGPPeer) and [`BGPAdvertisement`](crd::BGPAdvertisement), the per-node
//!   [`SpeakerStatus`](crd::SpeakerStatus) the speakers write, condition
//!   helpers, and the rendering of their CRDs ([`all_crds`], [`crd::render_crd_files`]; the
//!   `crdgen` binary writes them into the Helm chart).
//! - [`validate`]: `validate()` on each spec turns user input into parsed forms
//!   ([`ParsedPool`](validate::ParsedPool), [`ParsedPeer`](validate::ParsedPeer),
//!   [`ParsedAdvertisement`](validate::ParsedAdvertisement)) or *all* problems with field
//!   paths; plus overlap detection between pools, label selectors, communities, durations.
//! - [`constants`]: annotation and label names, including the MetalLB spellings.
//!
//! No I/O happens here: everything is a function of its arguments.

pub mod allocator;
pub mod announce;
pub mod constants;
pub mod crd;
pub mod validate;

pub use crd::all_crds;
