//! Rate limits per principal and per client IP, optionally per operation family (governor's
//! GCRA: a steady rate with a burst). A request is counted once when it arrives, so a lock
//! acquisition that waits for its lock costs the same as one that does not.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use super::Denied;

/// Requests per second allowed (0: no limit), with the burst allowed above it.
#[derive(Debug, Clone, Default)]
pub struct RateLimitSettings {
    /// Per principal, over every family.
    pub per_principal: u32,
    /// Per client IP address, over every family (and before authentication).
    pub per_ip: u32,
    /// Requests allowed at once above the steady rate [default: the rate itself].
    pub burst: Option<u32>,
    /// Per principal and operation family (`locks`, `cache`, `events`, `sagas`).
    pub per_family: BTreeMap<String, u32>,
}

/// The limiters.
pub struct RateLimits {
    per_principal: Option<DefaultKeyedRateLimiter<String>>,
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_family: BTreeMap<String, DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
}

fn limiter<K: std::hash::Hash + Eq + Clone>(
    rate: u32,
    burst: Option<u32>,
) -> Option<DefaultKeyedRateLimiter<K>> {
    let rate = NonZeroU32::new(rate)?;
    let burst = burst.and_then(NonZeroU32::new).unwrap_or(rate);
    Some(governor::RateLimiter::keyed(
        Quota::per_second(rate).allow_burst(burst),
    ))
}

impl RateLimits {
    pub fn new(settings: &RateLimitSettings) -> Self {
        RateLimits {
            per_principal: limiter(settings.per_principal, settings.burst),
            per_ip: limiter(settings.per_ip, settings.burst),
            per_family: settings
                .per_family
                .iter()
                .filter_map(|(family, rate)| {
                    Some((family.clone(), limiter(*rate, settings.burst)?))
                })
                .collect(),
            clock: DefaultClock::default(),
        }
    }

    fn refused(&self, not_until: governor::NotUntil<governor::clock::QuantaInstant>) -> Denied {
        Denied::RateLimited(
            not_until
                .wait_time_from(self.clock.now())
                .max(Duration::from_millis(1)),
        )
    }

    /// Count one request from `ip`, before authentication (so that floods of bad credentials
    /// are limited too).
    pub fn check_ip(&self, ip: Option<IpAddr>) -> Result<(), Denied> {
        if let (Some(limiter), Some(ip)) = (&self.per_ip, ip) {
            limiter.check_key(&ip).map_err(|n| self.refused(n))?;
        }
        Ok(())
    }

    /// Count one request of `principal` (for `family`); the wait before the next allowed one
    /// when over a limit.
    pub fn check_principal(&self, principal: &str, family: Option<&str>) -> Result<(), Denied> {
        let refused = |n| self.refused(n);
        let principal = principal.to_string();
        if let Some(limiter) = &self.per_principal {
            limiter.check_key(&principal).map_err(refused)?;
        }
        if let Some(limiter) = family.and_then(|f| self.per_family.get(f)) {
            limiter.check_key(&principal).map_err(refused)?;
        }
        Ok(())
    }

    /// Drop the state of keys that are back to a full burst.
    pub fn retain_recent(&self) {
        if let Some(l) = &self.per_principal {
            l.retain_recent();
        }
        if let Some(l) = &self.per_ip {
            l.retain_recent();
        }
        for l in self.per_family.values() {
            l.retain_recent();
        }
    }
}
