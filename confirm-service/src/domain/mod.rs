//! The insurance domain, pure functions of their inputs (no store, no clock, no gRPC):
//! eligibility rules, consents, clinical data, the answer's shape and the enumeration quotas.

pub mod answer;
pub mod as_of;
pub mod cert_grace;
pub mod clinical;
pub mod consent;
pub mod documents;
pub mod eligibility;
pub mod home_care;
pub mod institutions;
pub mod medical_aid;
pub mod quota;
