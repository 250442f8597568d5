//! Label selectors for `serviceAllocation`: the validated selector of
//! [`crate::validate::selector`], re-exported under the allocator's names so pool
//! configuration carries parsed selectors as they are, with one matching implementation.

pub use crate::validate::selector::{
    Labels, ParsedSelector as LabelSelector, Requirement as LabelRequirement,
};
