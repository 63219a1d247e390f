//! Event appends through the client core against a real `syros serve`.

mod common;

use common::*;
use syros_client::{ErrorKind, EventData, ExpectedVersion};

/// `Exact(0)` is a real expectation, not "any": protobuf encoders skip zero-valued scalars unless
/// told otherwise, and inside a `oneof` that turned `exact = 0` into an unset `kind` (= any).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expected_version_zero_is_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let client = connect(&server).await;
    let events = client.events();
    let two = vec![EventData::new("A", "{}"), EventData::new("A", "{}")];
    let appended = events
        .append("zero", two, ExpectedVersion::NoStream)
        .await
        .expect("first append");
    assert_eq!(appended.last_version, 1);
    let err = events
        .append(
            "zero",
            vec![EventData::new("B", "{}")],
            ExpectedVersion::Exact(0),
        )
        .await
        .expect_err("the stream is at version 1, not 0");
    assert_eq!(err.kind, ErrorKind::VersionConflict, "{err}");
    let ok = events
        .append(
            "zero",
            vec![EventData::new("B", "{}")],
            ExpectedVersion::Exact(1),
        )
        .await
        .expect("exact 1");
    assert_eq!(ok.last_version, 2);

    let fresh = events
        .append(
            "zero-2",
            vec![EventData::new("A", "{}")],
            ExpectedVersion::Any,
        )
        .await
        .expect("append");
    assert_eq!(fresh.last_version, 0);
    events
        .append(
            "zero-2",
            vec![EventData::new("A", "{}")],
            ExpectedVersion::Exact(0),
        )
        .await
        .expect("exact 0 at version 0");
}
