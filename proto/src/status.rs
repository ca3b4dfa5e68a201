//! How a refusal travels in a gRPC status, in one place for every party: the service and the
//! load harness's reference server encode it, the reader agent and the tests decode it.
//!
//! A refused request answers a gRPC error whose details carry a `google.rpc.ErrorInfo` with
//! domain [`ERROR_DOMAIN`](crate::ERROR_DOMAIN) and reason = the result code's proto name, and
//! whose metadata carries the numeric code under [`RESULT_CODE_METADATA`](crate::RESULT_CODE_METADATA).

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::v1::ResultCode;
use crate::{ERROR_DOMAIN, RESULT_CODE_METADATA};

/// The status of a refusal with result code `result`; `metadata` goes into the ErrorInfo.
pub fn refusal(
    code: Code,
    result: ResultCode,
    message: impl Into<String>,
    metadata: HashMap<String, String>,
) -> Status {
    let mut status = Status::with_error_details(
        code,
        message,
        ErrorDetails::with_error_info(result.as_str_name(), ERROR_DOMAIN, metadata),
    );
    if let Ok(v) = (result as i32).to_string().parse() {
        status.metadata_mut().insert(RESULT_CODE_METADATA, v);
    }
    status
}

/// The project's result code carried by a refusal, if the status is one.
pub fn result_code_of(status: &Status) -> Option<ResultCode> {
    let details = status.get_error_details();
    let info = details.error_info()?;
    if info.domain != ERROR_DOMAIN {
        return None;
    }
    ResultCode::from_str_name(&info.reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_reads_back_with_its_code_in_details_and_metadata() {
        let s = refusal(
            Code::PermissionDenied,
            ResultCode::TooManyBirthDates,
            "no",
            HashMap::from([("k".to_owned(), "v".to_owned())]),
        );
        assert_eq!(s.code(), Code::PermissionDenied);
        assert_eq!(result_code_of(&s), Some(ResultCode::TooManyBirthDates));
        assert_eq!(
            s.metadata()
                .get(RESULT_CODE_METADATA)
                .map(|v| v.to_str().ok()),
            Some(Some("84"))
        );
        let details = s.get_error_details();
        let metadata = details.error_info().map(|i| i.metadata.clone());
        assert_eq!(
            metadata
                .as_ref()
                .and_then(|m| m.get("k"))
                .map(String::as_str),
            Some("v")
        );
        // Another domain's ErrorInfo is not ours.
        let other = Status::with_error_details(
            Code::Internal,
            "x",
            ErrorDetails::with_error_info("RESULT_CODE_OK", "elsewhere", HashMap::new()),
        );
        assert_eq!(result_code_of(&other), None);
        assert_eq!(result_code_of(&Status::internal("plain")), None);
    }
}
