//! The connection pools' common settings (r2d2): both stores keep their connections for the
//! life of the store (no idle timeout, no maximum lifetime), check none on checkout (a broken
//! one is found on return by its manager's `has_broken`), and make new ones on one thread of
//! the pool's own.

use std::sync::Arc;
use std::time::Duration;

use super::StoreError;

/// A pool builder with the common settings; `wait` bounds how long a caller waits for a
/// connection.
pub(crate) fn builder<M>(size: u32, wait: Duration) -> r2d2::Builder<M>
where
    M: r2d2::ManageConnection<Error = StoreError>,
{
    r2d2::Pool::builder()
        .max_size(size)
        .test_on_check_out(false)
        .idle_timeout(None)
        .max_lifetime(None)
        .connection_timeout(wait)
        .thread_pool(Arc::new(
            scheduled_thread_pool::ScheduledThreadPool::builder()
                .num_threads(1)
                .thread_name_pattern("onshi-store-pool-{}")
                .build(),
        ))
        .error_handler(Box::new(LogPoolErrors))
}

/// Logs the failures of the pool's own connection attempts (a caller sees its own).
#[derive(Debug)]
struct LogPoolErrors;

impl r2d2::HandleError<StoreError> for LogPoolErrors {
    fn handle_error(&self, error: StoreError) {
        tracing::warn!(target: "onshi::store", "{error}");
    }
}
