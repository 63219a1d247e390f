//! Shared pieces of the benchmarks: starting `redis-server`, PostgreSQL and `syros serve` as child
//! processes (pinned to CPU 0 when `taskset` works, as in the peers harness), killed on drop.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A child process (redis-server, PostgreSQL or syros serve) killed on drop.
pub struct Proc {
    child: Child,
    name: &'static str,
    /// PostgreSQL's `postmaster.pid`: the server to stop when `child` is only the `runuser`
    /// wrapper, which does not pass a kill on.
    pid_file: Option<std::path::PathBuf>,
}

impl Proc {
    /// The process id (the server itself: `taskset` execs it).
    pub fn id(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let postmaster = self
            .pid_file
            .as_ref()
            .and_then(|file| std::fs::read_to_string(file).ok())
            .and_then(|text| text.lines().next().map(str::to_string));
        if let Some(pid) = postmaster {
            // SIGINT: PostgreSQL's fast shutdown, which also ends its worker processes.
            let _ = Command::new("kill").args(["-INT", &pid]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
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
        pid_file: None,
    };
    wait_port(port, &mut proc)?;
    Ok((proc, format!("redis://127.0.0.1:{port}")))
}

/// The directory of PostgreSQL's server programs (`initdb`, `postgres`), as Debian installs them.
fn pg_bin() -> Result<std::path::PathBuf> {
    let mut dirs: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL is not installed (apt-get install postgresql), or set DATABASE_URL")?
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop()
        .context("no initdb under /usr/lib/postgresql/*/bin")
}

/// A private PostgreSQL in `dir` (the same settings as `scripts/lib/services.sh`: trust
/// authentication, fsync and synchronous commit off), with `pg_stat_statements` loaded so a bench
/// can count the statements a workload sends. Returns the server and the URL of database
/// `syros_bench`. As root, runs as the `postgres` account (PostgreSQL refuses root).
pub fn start_postgres(dir: &Path, pin: bool) -> Result<(Proc, String)> {
    let bin = pg_bin()?;
    let port = free_port()?;
    let as_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0\n"));
    let user_cmd = |program: &Path| {
        let mut cmd = if as_root {
            let mut cmd = pinned(Path::new("runuser"), pin);
            cmd.args(["-u", "postgres", "--"]).arg(program);
            cmd
        } else {
            pinned(program, pin)
        };
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        cmd
    };
    if as_root {
        let status = Command::new("chown").arg("postgres").arg(dir).status()?;
        if !status.success() {
            bail!("chown postgres {}: {status}", dir.display());
        }
    }
    let data = dir.join("data");
    let status = user_cmd(&bin.join("initdb"))
        .arg("-D")
        .arg(&data)
        .args(["-U", "syros", "--auth=trust", "--no-sync"])
        .status()
        .context("initdb")?;
    if !status.success() {
        bail!("initdb failed: {status}");
    }
    let child = user_cmd(&bin.join("postgres"))
        .arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string(), "-k"])
        .arg(dir)
        .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
        .args(["-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
        .args(["-c", "max_connections=200"])
        .args(["-c", "shared_preload_libraries=pg_stat_statements"])
        .spawn()
        .context("start postgres")?;
    let mut proc = Proc {
        child,
        name: "postgres",
        pid_file: Some(data.join("postmaster.pid")),
    };
    wait_port(port, &mut proc)?;
    // Listening is not yet accepting connections: createdb retries until it is.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let created = Command::new(bin.join("createdb"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "syros"])
            .arg("syros_bench")
            .stderr(Stdio::null())
            .status()?;
        if created.success() {
            break;
        }
        if Instant::now() > deadline {
            bail!("createdb syros_bench failed: {created}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok((
        proc,
        format!("postgres://syros@127.0.0.1:{port}/syros_bench"),
    ))
}

pub fn start_syros(bin: &Path, dir: &Path, redis: Option<&str>, pin: bool) -> Result<(Proc, u16)> {
    start_syros_on(bin, dir, redis, None, pin)
}

/// `syros serve` with locks and cache on `redis` and events and sagas on `postgres` (each `None`:
/// the embedded store in `dir`).
pub fn start_syros_on(
    bin: &Path,
    dir: &Path,
    redis: Option<&str>,
    postgres: Option<&str>,
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
    if let Some(url) = redis {
        cmd.env("REDIS_URL", url)
            .env("SYROS_NAMESPACE", format!("bench{}", std::process::id()));
    }
    if let Some(url) = postgres {
        cmd.env("DATABASE_URL", url);
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("start {}", bin.display()))?;
    let mut proc = Proc {
        child,
        name: "syros serve",
        pid_file: None,
    };
    wait_port(port, &mut proc)?;
    Ok((proc, port))
}
