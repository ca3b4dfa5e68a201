//! The storage conformance suite (onshi_e2e::store_suite) against the SQLite store: each case
//! on a fresh file in its own temporary directory, opened through `store::open` like the
//! service opens it.

use std::sync::Arc;

use onshi_confirm_service::store::{self, Store};
use onshi_e2e::store_suite::Fixture;

fn fixture(case: &str) -> Fixture {
    let dir = tempfile::Builder::new()
        .prefix(&format!("onshi-store-{case}-"))
        .tempdir()
        .expect("temporary directory");
    let path = dir
        .path()
        .join("onshi.sqlite")
        .to_string_lossy()
        .into_owned();
    Fixture::new(
        move || -> Arc<dyn Store> {
            let store = store::open(&path).expect("open the SQLite store");
            assert_eq!(store.kind(), "sqlite");
            store
        },
        dir,
    )
}

onshi_e2e::store_suite!(fixture);
