//! The storage conformance suite (onshi_e2e::store_suite) against the PostgreSQL store: one
//! private server for this test binary (onshi_e2e::pg, stopped when the binary ends however it
//! ends), a fresh database for each case, opened through `store::open` like the service opens
//! it.

use std::sync::Arc;

use onshi_confirm_service::store::{self, Store};
use onshi_e2e::pg::PgServer;
use onshi_e2e::store_suite::Fixture;

fn fixture(case: &str) -> Fixture {
    let url = PgServer::shared()
        .create_database(case)
        .expect("a database on the private PostgreSQL");
    Fixture::new(
        move || -> Arc<dyn Store> {
            let store = store::open(&url).expect("open the PostgreSQL store");
            assert_eq!(store.kind(), "postgres");
            store
        },
        (),
    )
}

onshi_e2e::store_suite!(fixture);
