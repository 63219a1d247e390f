//! The client core's lock session (one stream per endpoint carrying every acquire, renew and
//! release of the client): many calls share it, a dropped acquire is cancelled on the server,
//! and a cut stream fails its calls like a cut unary call, whose retries get what the first
//! attempts were granted and nothing more; a server without sessions gets unary calls.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use syros_client::Client;
use syros_faults::FaultProxy;
use syros_proto::grpc::health::v1 as health;
use syros_proto::syros::v1 as pb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_lock_calls_share_one_client() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let client = connect(&server).await;
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let lease = client
                    .lock(format!("session/many-{}", i % 8))
                    .ttl(Duration::from_secs(10))
                    .wait(Duration::from_secs(20))
                    .acquire()
                    .await
                    .expect("acquire");
                lease.renew().await.expect("renew");
                let token = lease.fencing_token();
                lease.release().await.expect("release");
                token
            })
        })
        .collect();
    let mut tokens = Vec::new();
    for task in tasks {
        tokens.push(task.await.expect("task"));
    }
    tokens.sort_unstable();
    tokens.dedup();
    assert_eq!(tokens.len(), 64, "every grant has its own fencing token");
    assert_eq!(client.stats().retries, 0);
    assert!(client.list_locks("session/", 0).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_waiting_acquire_leaves_the_queue() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let holder = connect(&server).await;
    let waiter = connect(&server).await;
    let key = "session/dropped-waiter";
    let lease = holder.lock(key).acquire().await.expect("acquire");
    let abandoned = tokio::time::timeout(
        Duration::from_millis(300),
        waiter.lock(key).wait(Duration::from_secs(30)).acquire(),
    )
    .await;
    assert!(abandoned.is_err(), "the acquire was still waiting");
    tokio::time::sleep(Duration::from_millis(200)).await;
    lease.release().await.expect("release");
    // Without the cancel frame the server would hand the lock to the abandoned waiter here
    // (its stream is still open for the client's other calls).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(holder.lock_status(key).await.expect("status"), None);
    // And the waiter's session still serves it.
    waiter
        .lock(key)
        .acquire()
        .await
        .expect("acquire")
        .release()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_session_is_retried_without_a_second_grant() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let proxy = FaultProxy::start(server.addr()).await;
    let client = Client::connect(options(&[proxy.address()]))
        .await
        .expect("connect");
    let direct = connect(&server).await;
    let held_key = "session/cut-held";
    let cut_key = "session/cut-granted";

    let holder = direct.lock(held_key).acquire().await.expect("acquire");
    // A waiter in flight on the stream when it is cut.
    let waiting = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .lock(held_key)
                .wait(Duration::from_secs(20))
                .auto_renew(false)
                .acquire()
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The grant of this one is lost with the stream; the server has done the work.
    proxy.reply_cut_grace(Duration::from_millis(300));
    proxy.cut_reply_after(cut_key.as_bytes());
    let granted = client
        .lock(cut_key)
        .auto_renew(false)
        .acquire()
        .await
        .expect("the retry gets the lease the lost answer carried");
    assert_eq!(proxy.fired(), 1, "the stream was cut");
    assert!(client.stats().retries >= 1);
    let on_server = direct.lock_status(cut_key).await.unwrap().expect("held");
    assert_eq!(on_server.lease_id, granted.lease_id(), "one grant, not two");

    holder.release().await.expect("release");
    let second = waiting
        .await
        .expect("task")
        .expect("the waiter, retried on a new stream, gets the lock");
    let on_server = direct.lock_status(held_key).await.unwrap().expect("held");
    assert_eq!(on_server.lease_id, second.lease_id());
    assert!(
        direct
            .lock(held_key)
            .try_acquire()
            .await
            .expect("try")
            .is_none(),
        "the lock is held once"
    );
    second.release().await.expect("release");
    granted.release().await.expect("release");
}

/// A server of an older version: the lock service of a real `syros serve`, forwarded call by
/// call, except `BatchedSession`, which is answered UNIMPLEMENTED as a server whose service has
/// no such method answers, and `Session`, forwarded when `has_sessions` (a version with
/// one-frame sessions), else answered UNIMPLEMENTED too. Counts what it was asked.
#[derive(Clone)]
struct OlderServer {
    upstream: pb::LockServiceClient,
    has_sessions: bool,
    unary_calls: Arc<AtomicUsize>,
    session_calls: Arc<AtomicUsize>,
    batched_calls: Arc<AtomicUsize>,
}

impl pb::LockService for OlderServer {
    async fn acquire(
        &self,
        req: volo_grpc::Request<pb::AcquireLockRequest>,
    ) -> Result<volo_grpc::Response<pb::AcquireLockResponse>, volo_grpc::Status> {
        self.unary_calls.fetch_add(1, Ordering::SeqCst);
        self.upstream.acquire(req.into_inner()).await
    }

    async fn renew(
        &self,
        req: volo_grpc::Request<pb::RenewLockRequest>,
    ) -> Result<volo_grpc::Response<pb::RenewLockResponse>, volo_grpc::Status> {
        self.unary_calls.fetch_add(1, Ordering::SeqCst);
        self.upstream.renew(req.into_inner()).await
    }

    async fn release(
        &self,
        req: volo_grpc::Request<pb::ReleaseLockRequest>,
    ) -> Result<volo_grpc::Response<pb::ReleaseLockResponse>, volo_grpc::Status> {
        self.unary_calls.fetch_add(1, Ordering::SeqCst);
        self.upstream.release(req.into_inner()).await
    }

    async fn status(
        &self,
        req: volo_grpc::Request<pb::LockStatusRequest>,
    ) -> Result<volo_grpc::Response<pb::LockStatusResponse>, volo_grpc::Status> {
        self.upstream.status(req.into_inner()).await
    }

    async fn list(
        &self,
        req: volo_grpc::Request<pb::ListLocksRequest>,
    ) -> Result<volo_grpc::Response<pb::ListLocksResponse>, volo_grpc::Status> {
        self.upstream.list(req.into_inner()).await
    }

    async fn force_release(
        &self,
        req: volo_grpc::Request<pb::ForceReleaseLockRequest>,
    ) -> Result<volo_grpc::Response<pb::ForceReleaseLockResponse>, volo_grpc::Status> {
        self.upstream.force_release(req.into_inner()).await
    }

    async fn session(
        &self,
        req: volo_grpc::Request<volo_grpc::RecvStream<pb::LockSessionRequest>>,
    ) -> Result<
        volo_grpc::Response<
            futures::stream::BoxStream<'static, Result<pb::LockSessionResponse, volo_grpc::Status>>,
        >,
        volo_grpc::Status,
    > {
        use futures::StreamExt;
        self.session_calls.fetch_add(1, Ordering::SeqCst);
        if !self.has_sessions {
            return Err(volo_grpc::Status::unimplemented("Method not found"));
        }
        // The client's request stream must be `Sync`: the incoming one is handed over by a task.
        let (frames, upstream_frames) = futures::channel::mpsc::unbounded();
        let mut incoming = req.into_inner();
        tokio::spawn(async move {
            while let Some(Ok(frame)) = incoming.next().await {
                if frames.unbounded_send(frame).is_err() {
                    break;
                }
            }
        });
        let frames = upstream_frames;
        let answers = self.upstream.session(frames).await?.into_inner();
        Ok(volo_grpc::Response::new(answers.boxed()))
    }

    async fn batched_session(
        &self,
        _req: volo_grpc::Request<volo_grpc::RecvStream<pb::LockSessionRequests>>,
    ) -> Result<
        volo_grpc::Response<
            futures::stream::BoxStream<
                'static,
                Result<pb::LockSessionResponses, volo_grpc::Status>,
            >,
        >,
        volo_grpc::Status,
    > {
        self.batched_calls.fetch_add(1, Ordering::SeqCst);
        Err(volo_grpc::Status::unimplemented("Method not found"))
    }
}

/// The health service of the server behind [`WithoutSessions`], forwarded (the client checks
/// health when it connects).
#[derive(Clone)]
struct ForwardedHealth(health::HealthClient);

impl health::Health for ForwardedHealth {
    async fn check(
        &self,
        req: volo_grpc::Request<health::HealthCheckRequest>,
    ) -> Result<volo_grpc::Response<health::HealthCheckResponse>, volo_grpc::Status> {
        self.0.check(req.into_inner()).await
    }

    async fn watch(
        &self,
        _req: volo_grpc::Request<health::HealthCheckRequest>,
    ) -> Result<
        volo_grpc::Response<
            futures::stream::BoxStream<
                'static,
                Result<health::HealthCheckResponse, volo_grpc::Status>,
            >,
        >,
        volo_grpc::Status,
    > {
        Err(volo_grpc::Status::unimplemented("not forwarded"))
    }
}

/// Serve `older` (and the health service of the server behind it) on a new address.
async fn serve_older(
    older: OlderServer,
    health_of: &Server,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let health = health::HealthClientBuilder::new("syros")
        .address(health_of.addr())
        .build();
    let serving = tokio::spawn(async move {
        let _ = volo_grpc::server::Server::new()
            .add_service(
                volo_grpc::server::ServiceBuilder::new(pb::LockServiceServer::new(older)).build(),
            )
            .add_service(
                volo_grpc::server::ServiceBuilder::new(health::HealthServer::new(ForwardedHealth(
                    health,
                )))
                .build(),
            )
            .run_with_shutdown(
                volo::net::DefaultIncoming::from(listener),
                std::future::pending::<Result<(), std::io::Error>>(),
            )
            .await;
    });
    (addr, serving)
}

/// Three rounds of acquire, renew and release of one key through `client`; the fencing tokens
/// the rounds got.
async fn three_rounds(client: &Client, key: &str) -> Vec<u64> {
    let mut tokens = Vec::new();
    for round in 0..3 {
        let lease = client
            .lock(key)
            .ttl(Duration::from_secs(10))
            .acquire()
            .await
            .unwrap_or_else(|err| panic!("acquire {round}: {err}"));
        lease.renew().await.expect("renew");
        tokens.push(lease.fencing_token());
        lease.release().await.expect("release");
    }
    assert!(
        tokens.windows(2).all(|pair| pair[0] < pair[1]),
        "fencing tokens increase: {tokens:?}"
    );
    tokens
}

fn older_server(server: &Server, has_sessions: bool) -> OlderServer {
    OlderServer {
        upstream: pb::LockServiceClientBuilder::new("syros")
            .address(server.addr())
            .build(),
        has_sessions,
        unary_calls: Arc::default(),
        session_calls: Arc::default(),
        batched_calls: Arc::default(),
    }
}

/// A client of a server without lock sessions asks for a batched session once, then for a
/// session once, then makes every lock call as a unary call: acquire, renew and release work,
/// fencing tokens increase, and nothing is retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_sessions_gets_unary_lock_calls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let old_server = older_server(&server, false);
    let (old_addr, serving) = serve_older(old_server.clone(), &server).await;

    let client = Client::connect(options(&[old_addr.to_string()]))
        .await
        .expect("connect");
    three_rounds(&client, "session/old-server").await;
    assert_eq!(
        old_server.batched_calls.load(Ordering::SeqCst),
        1,
        "asked for a batched session once, then remembered the answer"
    );
    assert_eq!(
        old_server.session_calls.load(Ordering::SeqCst),
        1,
        "asked for a session once, then remembered the answer"
    );
    assert_eq!(
        old_server.unary_calls.load(Ordering::SeqCst),
        9,
        "3 × acquire, renew, release"
    );
    assert_eq!(client.stats().retries, 0);
    serving.abort();
}

/// A client of a server with one-frame sessions only asks for a batched session once, then
/// puts its lock calls on one `Session` stream: after the first call (unary if it was sent while
/// the server's UNIMPLEMENTED was on its way) no call is unary, and nothing is retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_batched_sessions_gets_one_frame_sessions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let old_server = older_server(&server, true);
    let (old_addr, serving) = serve_older(old_server.clone(), &server).await;

    let client = Client::connect(options(&[old_addr.to_string()]))
        .await
        .expect("connect");
    three_rounds(&client, "session/one-frame-server").await;
    assert_eq!(old_server.batched_calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        old_server.session_calls.load(Ordering::SeqCst),
        1,
        "every call after the first on one Session stream"
    );
    // The first call goes unary if it was sent on the batched stream before the UNIMPLEMENTED
    // came back; if that answer came first, it went on the Session stream too.
    assert!(
        old_server.unary_calls.load(Ordering::SeqCst) <= 1,
        "only a call that met the UNIMPLEMENTED went unary"
    );
    assert_eq!(client.stats().retries, 0);
    serving.abort();
}
