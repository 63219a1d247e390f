//! [`Lease`]: a held lock, renewed by the client core until released or lost.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use syros_client::LostSignal;

use crate::error::{ErrorKind, ErrorRecord};
use crate::records::{millis, LeaseInfo};
use crate::rt::{self, CoreTask};

/// How a lease's wait ended ([`Lease::wait_end`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseEnd {
    /// The lease can no longer be guaranteed (the server said so, or renewals failed past its
    /// expiry): stop the protected work.
    Lost,
    /// It was released.
    Released,
    /// The wait's time limit passed; the lease is still held.
    TimedOut,
}

/// A held lock. The core renews it at about a third of its TTL; dropping the last reference
/// releases it.
pub struct Lease {
    lease: Arc<tokio::sync::Mutex<Option<syros_client::Lease>>>,
    signal: LostSignal,
    info: Mutex<LeaseInfo>,
    ttl_ms: u64,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("info", &self.info()).finish()
    }
}

impl Lease {
    pub(crate) fn new(lease: syros_client::Lease) -> Lease {
        Lease {
            signal: lease.lost_signal(),
            info: Mutex::new(lease.info()),
            ttl_ms: millis(lease.ttl()),
            lease: Arc::new(tokio::sync::Mutex::new(Some(lease))),
        }
    }

    /// The lease as last granted or renewed.
    pub fn info(&self) -> LeaseInfo {
        let mut info = self.info.lock().unwrap_or_else(|p| p.into_inner());
        if let Ok(guard) = self.lease.try_lock() {
            if let Some(lease) = guard.as_ref() {
                *info = lease.info();
            }
        }
        info.clone()
    }

    /// The TTL it was acquired with.
    pub fn ttl_ms(&self) -> u64 {
        self.ttl_ms
    }

    /// Whether it was lost.
    pub fn is_lost(&self) -> bool {
        self.signal.is_lost()
    }

    /// Whether it is still ours: neither released nor lost.
    pub fn is_held(&self) -> bool {
        !self.signal.is_lost()
            && self
                .lease
                .try_lock()
                .map(|guard| guard.is_some())
                .unwrap_or(true)
    }

    /// Release it; releasing again does nothing.
    pub fn release(&self) -> CoreTask<()> {
        let lease = self.lease.clone();
        rt::spawn(async move {
            let taken = lease.lock().await.take();
            match taken {
                Some(lease) => Ok(lease.release().await?),
                None => Ok(()),
            }
        })
    }

    /// Extend it now (the core renews it by itself anyway).
    pub fn renew(&self) -> CoreTask<LeaseInfo> {
        let lease = self.lease.clone();
        rt::spawn(async move {
            let guard = lease.lock().await;
            match guard.as_ref() {
                Some(lease) => Ok(lease.renew().await?),
                None => Err(ErrorRecord::new(
                    ErrorKind::LockNotHeld,
                    "the lease was already released",
                )),
            }
        })
    }

    /// Wait until the lease ends (lost or released), at most `timeout_ms` (`None`: no limit).
    pub fn wait_end(&self, timeout_ms: Option<u64>) -> CoreTask<LeaseEnd> {
        let signal = self.signal.clone();
        rt::spawn(async move {
            let end = match timeout_ms {
                Some(limit) => tokio::time::timeout(Duration::from_millis(limit), signal.wait())
                    .await
                    .ok(),
                None => Some(signal.wait().await),
            };
            Ok(match end {
                Some(syros_client::LeaseEnd::Lost) => LeaseEnd::Lost,
                Some(syros_client::LeaseEnd::Released) => LeaseEnd::Released,
                None => LeaseEnd::TimedOut,
            })
        })
    }
}
