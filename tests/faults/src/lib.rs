//! Fault injection for Syros tests, done for real on the wire: a TCP proxy between a client and
//! a server (a Syros client and `syros serve`, or `syros serve` and Redis/PostgreSQL) that can
//! lose a reply, delay replies, or stall and cut connections. Tests use it instead of mocking
//! a store: the real server on the far side does the work; only the reply is lost.
//!
//! ```no_run
//! # async fn demo(server: std::net::SocketAddr) {
//! let proxy = syros_faults::FaultProxy::start(server).await;
//! // The request whose bytes contain "orders:42" reaches the server and is applied; its reply
//! // never comes back and the connection is cut, as when a network drops after the fact.
//! proxy.cut_reply_after(b"orders:42");
//! // connect the client to proxy.addr() ...
//! # }
//! ```
//!
//! Matching works on the bytes of one read from the client, so a pattern should be something
//! that travels verbatim in one packet: a lock key or stream name inside a protobuf body, or a
//! SQL keyword such as `COMMIT` in PostgreSQL's protocol (HTTP/2 headers are HPACK-compressed,
//! so gRPC method names do not qualify).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does to traffic right now.
#[derive(Default)]
struct Faults {
    /// One-shot: after forwarding a client chunk containing this, drop the server's reply on
    /// that connection and cut it.
    cut_reply_after: Option<Vec<u8>>,
    /// One-shot: a client chunk containing this is never forwarded; the connection is cut.
    cut_request: Option<Vec<u8>>,
    /// Hold every server-to-client chunk this long before forwarding it.
    reply_delay: Duration,
    /// Hold every client-to-server chunk this long before forwarding it.
    request_delay: Duration,
    /// While set: after a client chunk containing this pattern, hold the server's next reply
    /// chunk on that connection for the duration (a slow answer to one kind of request).
    delay_replies_to: Option<(Vec<u8>, Duration)>,
    /// Accept connections but forward nothing either way (a partitioned peer).
    blackhole: bool,
    /// Bumped to cut every open connection.
    generation: u64,
    /// Where new connections go (can be switched, as a failover would).
    target: Option<SocketAddr>,
    /// How many faults fired (patterns matched), for tests to assert the fault happened.
    fired: u64,
    /// One-shot: when the next one-shot fault fires, refuse new connections for this long.
    partition_after_fault: Duration,
    /// New connections are closed at once until then.
    refuse_until: Option<std::time::Instant>,
    /// How long a connection whose reply is being lost stays open (swallowing what the server
    /// sends) before it is cut.
    reply_cut_grace: Duration,
}

impl Faults {
    /// Count a one-shot fault, and start the partition that was asked to follow it.
    fn fire(&mut self) {
        self.fired += 1;
        if !self.partition_after_fault.is_zero() {
            self.refuse_until = Some(std::time::Instant::now() + self.partition_after_fault);
            self.partition_after_fault = Duration::ZERO;
        }
    }

    fn refusing(&self) -> bool {
        self.refuse_until
            .is_some_and(|until| std::time::Instant::now() < until)
    }
}

/// A running proxy on an ephemeral loopback port. Dropping it stops accepting and cuts every
/// connection.
pub struct FaultProxy {
    addr: SocketAddr,
    faults: Arc<Mutex<Faults>>,
    cut: watch::Sender<u64>,
    _stop: watch::Sender<()>,
}

impl FaultProxy {
    /// Start a proxy on 127.0.0.1 forwarding to `target`.
    pub async fn start(target: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fault proxy on loopback");
        let addr = listener.local_addr().expect("proxy address");
        let faults = Arc::new(Mutex::new(Faults {
            target: Some(target),
            ..Faults::default()
        }));
        let (cut, cut_rx) = watch::channel(0u64);
        let (stop, mut stop_rx) = watch::channel(());
        let shared = faults.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    _ = stop_rx.changed() => return,
                };
                let Ok((client, _)) = accepted else { continue };
                if lock(&shared).refusing() {
                    drop(client);
                    continue;
                }
                let _ = client.set_nodelay(true);
                let faults = shared.clone();
                let cut_rx = cut_rx.clone();
                let stop_rx = stop_rx.clone();
                tokio::spawn(async move {
                    let target = lock(&faults).target;
                    let Some(target) = target else { return };
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let _ = server.set_nodelay(true);
                    pump_connection(client, server, faults, cut_rx, stop_rx).await;
                });
            }
        });
        FaultProxy {
            addr,
            faults,
            cut,
            _stop: stop,
        }
    }

    /// The proxy's address: give this to the client instead of the server's.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `host:port` of [`Self::addr`].
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Once: forward the next client chunk containing `pattern`, then drop whatever the server
    /// answers on that connection and cut it. The server has done the work; the client never
    /// hears so (a reply lost after the fact).
    pub fn cut_reply_after(&self, pattern: &[u8]) {
        lock(&self.faults).cut_reply_after = Some(pattern.to_vec());
    }

    /// Once: the next client chunk containing `pattern` is not forwarded and its connection is
    /// cut (a request lost before the server saw it).
    pub fn cut_request(&self, pattern: &[u8]) {
        lock(&self.faults).cut_request = Some(pattern.to_vec());
    }

    /// Once: when the next one-shot fault ([`Self::cut_reply_after`], [`Self::cut_request`])
    /// fires, close every new connection at once for `duration` (connections already open are
    /// untouched). Models a partition that starts with the lost message, so the client's retries
    /// fail for a known time before one gets through.
    pub fn partition_after_fault(&self, duration: Duration) {
        lock(&self.faults).partition_after_fault = duration;
    }

    /// When [`Self::cut_reply_after`] loses a reply, keep swallowing what the server sends for
    /// `grace` before cutting the connection (default zero: cut at the server's first byte).
    /// A server may send something (an HTTP/2 window update) before its answer, and may cancel
    /// a request whose connection closes: the grace lets it finish the work whose answer is lost.
    pub fn reply_cut_grace(&self, grace: Duration) {
        lock(&self.faults).reply_cut_grace = grace;
    }

    /// Hold each server-to-client chunk for `delay` (zero: no delay).
    pub fn delay_replies(&self, delay: Duration) {
        lock(&self.faults).reply_delay = delay;
    }

    /// From now on, each client chunk containing `pattern` has the next reply chunk on its
    /// connection held for `delay`; other traffic (and other connections) is not slowed. Each
    /// match counts in [`Self::fired`], so a test can wait for the slowed request to be under
    /// way. A zero `delay` turns it off.
    pub fn delay_replies_to(&self, pattern: &[u8], delay: Duration) {
        lock(&self.faults).delay_replies_to = (!delay.is_zero()).then(|| (pattern.to_vec(), delay));
    }

    /// Hold each client-to-server chunk for `delay` (zero: no delay).
    pub fn delay_requests(&self, delay: Duration) {
        lock(&self.faults).request_delay = delay;
    }

    /// While on, nothing is forwarded either way (connections stay open, as in a partition).
    pub fn blackhole(&self, on: bool) {
        lock(&self.faults).blackhole = on;
    }

    /// Send new connections to `target` from now on (open ones keep their server until cut).
    pub fn retarget(&self, target: SocketAddr) {
        lock(&self.faults).target = Some(target);
    }

    /// Cut every open connection now (new ones are accepted as usual).
    pub fn cut_all(&self) {
        let generation = {
            let mut faults = lock(&self.faults);
            faults.generation += 1;
            faults.generation
        };
        let _ = self.cut.send(generation);
    }

    /// How many one-shot faults have fired so far.
    pub fn fired(&self) -> u64 {
        lock(&self.faults).fired
    }

    /// Wait up to `within` for at least `count` one-shot faults to have fired.
    pub async fn wait_fired(&self, count: u64, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if self.fired() >= count {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.fired() >= count
    }
}

fn lock(faults: &Mutex<Faults>) -> MutexGuard<'_, Faults> {
    faults
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn wait_while_blackholed(faults: &Mutex<Faults>) {
    while lock(faults).blackhole {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Copy both directions of one proxied connection, applying the faults, until either side
/// closes, a fault cuts it, [`FaultProxy::cut_all`] is called or the proxy is dropped.
async fn pump_connection(
    client: TcpStream,
    server: TcpStream,
    faults: Arc<Mutex<Faults>>,
    mut cut_rx: watch::Receiver<u64>,
    mut stop_rx: watch::Receiver<()>,
) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    // Set by the request side when the next reply on this connection must be dropped.
    let (drop_reply_tx, drop_reply_rx) = watch::channel(false);
    // Delays the request side asked for, one per matching request, applied to the next replies.
    let (hold_tx, mut hold_rx) = tokio::sync::mpsc::unbounded_channel::<Duration>();
    let born = *cut_rx.borrow_and_update();

    let requests = {
        let faults = faults.clone();
        async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match client_read.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let chunk = &buf[..n];
                wait_while_blackholed(&faults).await;
                let (delay, cut_here, drop_reply) = {
                    let mut f = lock(&faults);
                    let cut_here = f.cut_request.as_deref().is_some_and(|p| contains(chunk, p));
                    if cut_here {
                        f.cut_request = None;
                        f.fire();
                    }
                    let drop_reply = !cut_here
                        && f.cut_reply_after
                            .as_deref()
                            .is_some_and(|p| contains(chunk, p));
                    if drop_reply {
                        f.cut_reply_after = None;
                        f.fire();
                    }
                    let hold = match &f.delay_replies_to {
                        Some((pattern, delay)) if !cut_here && contains(chunk, pattern) => {
                            Some(*delay)
                        }
                        _ => None,
                    };
                    if hold.is_some() {
                        f.fired += 1;
                    }
                    if let Some(hold) = hold {
                        let _ = hold_tx.send(hold);
                    }
                    (f.request_delay, cut_here, drop_reply)
                };
                if cut_here {
                    return;
                }
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                if drop_reply {
                    let _ = drop_reply_tx.send(true);
                }
                if server_write.write_all(chunk).await.is_err() {
                    return;
                }
            }
        }
    };
    let replies = {
        let faults = faults.clone();
        async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match server_read.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if *drop_reply_rx.borrow() {
                    // The server answered the marked request: lose the answer and, after the
                    // grace (still losing whatever the server sends), the connection.
                    let grace = lock(&faults).reply_cut_grace;
                    let swallow = async {
                        while let Ok(n) = server_read.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                        }
                    };
                    let _ = tokio::time::timeout(grace, swallow).await;
                    return;
                }
                wait_while_blackholed(&faults).await;
                if let Ok(hold) = hold_rx.try_recv() {
                    tokio::time::sleep(hold).await;
                }
                let delay = lock(&faults).reply_delay;
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                if client_write.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    };
    let cut = async {
        loop {
            if cut_rx.changed().await.is_err() {
                return;
            }
            if *cut_rx.borrow() != born {
                return;
            }
        }
    };
    // Whichever ends first ends the connection: both halves are dropped, closing both sockets.
    tokio::select! {
        _ = requests => {}
        _ = replies => {}
        _ = cut => {}
        _ = stop_rx.changed() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    loop {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if socket.write_all(&buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    async fn roundtrip(stream: &mut TcpStream, data: &[u8]) -> Option<Vec<u8>> {
        stream.write_all(data).await.ok()?;
        let mut buf = vec![0u8; data.len()];
        match tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut buf)).await {
            Ok(Ok(_)) => Some(buf),
            _ => None,
        }
    }

    #[tokio::test]
    async fn forwards_then_loses_the_marked_reply_and_cuts() {
        let proxy = FaultProxy::start(echo_server().await).await;
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(
            roundtrip(&mut stream, b"hello").await.as_deref(),
            Some(&b"hello"[..])
        );
        proxy.cut_reply_after(b"marked");
        assert_eq!(roundtrip(&mut stream, b"a marked request").await, None);
        assert_eq!(proxy.fired(), 1);
        // The fault is one-shot: a new connection works again.
        let mut again = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(
            roundtrip(&mut again, b"marked").await.as_deref(),
            Some(&b"marked"[..])
        );
    }

    #[tokio::test]
    async fn cut_request_never_reaches_the_server() {
        let proxy = FaultProxy::start(echo_server().await).await;
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        proxy.cut_request(b"lost");
        assert_eq!(roundtrip(&mut stream, b"lost request").await, None);
        assert!(proxy.wait_fired(1, Duration::from_secs(1)).await);
    }

    #[tokio::test]
    async fn delays_replies_and_cuts_all() {
        let proxy = FaultProxy::start(echo_server().await).await;
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        proxy.delay_replies(Duration::from_millis(300));
        let started = std::time::Instant::now();
        assert!(roundtrip(&mut stream, b"slow").await.is_some());
        assert!(started.elapsed() >= Duration::from_millis(300));
        proxy.delay_replies(Duration::ZERO);
        proxy.cut_all();
        assert_eq!(roundtrip(&mut stream, b"after cut").await, None);
    }

    #[tokio::test]
    async fn delays_only_replies_to_matching_requests() {
        let proxy = FaultProxy::start(echo_server().await).await;
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        proxy.delay_replies_to(b"slow", Duration::from_millis(1000));
        let started = std::time::Instant::now();
        assert!(roundtrip(&mut stream, b"fast").await.is_some());
        let fast = started.elapsed();
        let started = std::time::Instant::now();
        assert!(roundtrip(&mut stream, b"a slow one").await.is_some());
        assert!(started.elapsed() >= Duration::from_millis(1000));
        assert!(fast < Duration::from_millis(1000), "{fast:?}");
        assert_eq!(proxy.fired(), 1);
        proxy.delay_replies_to(b"slow", Duration::ZERO);
        let started = std::time::Instant::now();
        assert!(roundtrip(&mut stream, b"slow again").await.is_some());
        assert!(started.elapsed() < Duration::from_millis(1000));
    }

    #[tokio::test]
    async fn reply_cut_grace_keeps_the_connection_open_while_losing_the_reply() {
        let proxy = FaultProxy::start(echo_server().await).await;
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        proxy.reply_cut_grace(Duration::from_millis(300));
        proxy.cut_reply_after(b"marked");
        let started = std::time::Instant::now();
        assert_eq!(roundtrip(&mut stream, b"marked").await, None);
        assert!(started.elapsed() >= Duration::from_millis(300));
    }

    #[tokio::test]
    async fn partition_after_fault_refuses_new_connections_for_a_while() {
        let proxy = FaultProxy::start(echo_server().await).await;
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        proxy.partition_after_fault(Duration::from_millis(400));
        proxy.cut_reply_after(b"marked");
        let fired = std::time::Instant::now();
        assert_eq!(roundtrip(&mut stream, b"marked").await, None);
        let mut refused = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(roundtrip(&mut refused, b"during").await, None);
        tokio::time::sleep(Duration::from_millis(400).saturating_sub(fired.elapsed())).await;
        let mut again = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(
            roundtrip(&mut again, b"after").await.as_deref(),
            Some(&b"after"[..])
        );
    }
}
