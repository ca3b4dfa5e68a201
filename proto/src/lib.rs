//! onshi's gRPC contract (`onshi.v1`) and the challenge binding every party signs or verifies.
#![forbid(unsafe_code)]

pub mod binding;
pub mod status;

/// Generated from `proto/onshi/v1/confirmation.proto`.
#[allow(clippy::all, missing_debug_implementations)]
pub mod v1 {
    tonic::include_proto!("onshi.v1");

    /// The encoded file descriptor set, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/onshi_v1_descriptor.bin"));
}

/// The error domain in `google.rpc.ErrorInfo` details of refusals.
pub const ERROR_DOMAIN: &str = "onshi.v1";
/// The metadata key carrying the numeric result code of a refusal.
pub const RESULT_CODE_METADATA: &str = "result-code";
