//! Shared pieces of the benchmarks: starting `redis-server` and `syros serve` as child processes
//! (pinned to CPU 0 when `taskset` works, as in the peers harness), killed on drop.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A child process (redis-server or syros serve) killed on drop.
pub struct Proc {
    child: Child,
    name: &'static str,
}

impl Proc {
    /// The process id (the server itself: `taskset` execs it).
    pub fn id(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Whether servers can be pinned to CPU 0 (this process may itself be pinned to CPU 1, so the
/// parallelism it sees says nothing).
pub fn has_taskset() -> bool {
    Command::new("taskset")
        .args(["-c", "0", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `program args...`, pinned to CPU 0 when possible.
fn pinned(program: &Path, pin: bool) -> Command {
    if pin {
        let mut cmd = Command::new("taskset");
        cmd.arg("-c").arg("0").arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn wait_port(port: u16, proc: &mut Proc) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    while Instant::now() < deadline {
        if let Some(status) = proc.child.try_wait()? {
            bail!("{} exited with {status} before listening", proc.name);
        }
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{} did not listen on {port} within 60 s", proc.name)
}

pub fn start_redis(dir: &Path, pin: bool) -> Result<(Proc, String)> {
    let port = free_port()?;
    let child = pinned(Path::new("redis-server"), pin)
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start redis-server (install it, or set REDIS_URL)")?;
    let mut proc = Proc {
        child,
        name: "redis-server",
    };
    wait_port(port, &mut proc)?;
    Ok((proc, format!("redis://127.0.0.1:{port}")))
}

pub fn start_syros(bin: &Path, dir: &Path, redis: Option<&str>, pin: bool) -> Result<(Proc, u16)> {
    start_syros_with(bin, dir, redis, None, pin)
}

/// [`start_syros`] with a `DATABASE_URL` too (e.g. PostgreSQL for sagas and events).
pub fn start_syros_with(
    bin: &Path,
    dir: &Path,
    redis: Option<&str>,
    database_url: Option<&str>,
    pin: bool,
) -> Result<(Proc, u16)> {
    // The server runs in `dir`: a relative path must not be resolved there.
    let bin = &bin
        .canonicalize()
        .with_context(|| format!("no server binary at {}", bin.display()))?;
    let port = free_port()?;
    let mut cmd = pinned(bin, pin);
    cmd.arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SERVER_HOST", "127.0.0.1")
        .env("GRPC_PORT", port.to_string())
        .env("REST_PORT", free_port()?.to_string())
        .env("WS_PORT", free_port()?.to_string())
        .env("SYROS_DATA_DIR", dir)
        .env("LOG_LEVEL", "warn")
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(url) = database_url {
        cmd.env("DATABASE_URL", url);
    }
    if let Some(url) = redis {
        cmd.env("REDIS_URL", url)
            .env("SYROS_NAMESPACE", format!("bench{}", std::process::id()));
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("start {}", bin.display()))?;
    let mut proc = Proc {
        child,
        name: "syros serve",
    };
    wait_port(port, &mut proc)?;
    Ok((proc, port))
}
