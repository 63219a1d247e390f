//! Roles and permissions: what a principal may do, by operation family, optionally narrowed to
//! a key/stream/service prefix.
//!
//! A grant is written `family:action` (`locks:acquire`), `family:*` (every action of the
//! family), `*` (everything), each optionally followed by `:PREFIX*` to allow only resources
//! (lock and cache keys, event streams, saga names or worker services) starting with `PREFIX`:
//! `locks:acquire:orders/*`.

use std::collections::BTreeMap;
use std::fmt;

use anyhow::bail;
use serde::Deserialize;

/// One permission, per operation family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    /// Acquire, renew and release locks.
    LocksAcquire,
    /// Lock status, listing and lock-change subscriptions.
    LocksRead,
    /// Force-release a lock someone else holds.
    LocksAdmin,
    CacheRead,
    /// Set, delete, invalidate by tag.
    CacheWrite,
    EventsAppend,
    /// Read and subscribe.
    EventsRead,
    SagasStart,
    SagasRead,
    SagasCancel,
    /// Take and complete saga tasks (step runners).
    SagasWork,
    /// `GET /metrics`, when it is protected.
    MetricsRead,
}

impl Permission {
    /// Every permission.
    pub const ALL: [Permission; 12] = [
        Permission::LocksAcquire,
        Permission::LocksRead,
        Permission::LocksAdmin,
        Permission::CacheRead,
        Permission::CacheWrite,
        Permission::EventsAppend,
        Permission::EventsRead,
        Permission::SagasStart,
        Permission::SagasRead,
        Permission::SagasCancel,
        Permission::SagasWork,
        Permission::MetricsRead,
    ];

    /// The name used in configuration and error messages (`locks:acquire`).
    pub fn name(self) -> &'static str {
        match self {
            Permission::LocksAcquire => "locks:acquire",
            Permission::LocksRead => "locks:read",
            Permission::LocksAdmin => "locks:admin",
            Permission::CacheRead => "cache:read",
            Permission::CacheWrite => "cache:write",
            Permission::EventsAppend => "events:append",
            Permission::EventsRead => "events:read",
            Permission::SagasStart => "sagas:start",
            Permission::SagasRead => "sagas:read",
            Permission::SagasCancel => "sagas:cancel",
            Permission::SagasWork => "sagas:work",
            Permission::MetricsRead => "metrics:read",
        }
    }

    /// The operation family (`locks`), which rate limits are configured by.
    pub fn family(self) -> &'static str {
        self.name().split(':').next().unwrap_or("")
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A permission, on every resource or on those starting with a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub permission: Permission,
    /// `None`: any resource.
    pub prefix: Option<String>,
}

impl Grant {
    /// Whether this grant allows `permission` on `resource` (`None`: an operation that names
    /// no resource, such as renewing a lease by its id, which any grant of the permission
    /// allows).
    pub fn allows(&self, permission: Permission, resource: Option<&str>) -> bool {
        self.permission == permission
            && match (&self.prefix, resource) {
                (None, _) | (_, None) => true,
                (Some(prefix), Some(resource)) => resource.starts_with(prefix.as_str()),
            }
    }
}

/// Parse one grant (`locks:acquire`, `locks:*`, `*`, each with an optional `:PREFIX*`).
pub fn parse_grant(text: &str) -> anyhow::Result<Vec<Grant>> {
    let (pattern, prefix) = match text
        .split_once(':')
        .map(|(f, rest)| (f, rest.split_once(':')))
    {
        Some((family, Some((action, prefix)))) => (format!("{family}:{action}"), Some(prefix)),
        _ => (text.to_string(), None),
    };
    let prefix = match prefix {
        None => None,
        Some(p) => match p.strip_suffix('*') {
            Some(p) if !p.contains('*') => Some(p.to_string()),
            _ => bail!("grant {text:?}: a resource prefix ends with * (orders/*)"),
        },
    };
    let matching: Vec<Permission> = Permission::ALL
        .into_iter()
        .filter(|p| {
            pattern == "*" || p.name() == pattern || pattern.strip_suffix(":*") == Some(p.family())
        })
        .collect();
    if matching.is_empty() {
        bail!(
            "grant {text:?} names no permission (known: {})",
            Permission::ALL.map(Permission::name).join(", ")
        );
    }
    Ok(matching
        .into_iter()
        .map(|permission| Grant {
            permission,
            prefix: prefix.clone(),
        })
        .collect())
}

/// A role as written in `syros.toml`: `[roles.orders] grants = ["locks:acquire:orders/*"]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleConfig {
    pub grants: Vec<String>,
}

/// Role name → grants: the built-in roles, replaced or extended by configured ones.
#[derive(Debug, Clone, Default)]
pub struct Roles(BTreeMap<String, Vec<Grant>>);

impl Roles {
    /// The built-in roles plus `configured` (which may redefine a built-in one).
    pub fn new(configured: &BTreeMap<String, RoleConfig>) -> anyhow::Result<Roles> {
        let mut roles = BTreeMap::new();
        let builtin: [(&str, &[&str]); 4] = [
            ("admin", &["*"]),
            (
                "writer",
                &[
                    "locks:acquire",
                    "locks:read",
                    "cache:*",
                    "events:*",
                    "sagas:start",
                    "sagas:read",
                ],
            ),
            (
                "reader",
                &["locks:read", "cache:read", "events:read", "sagas:read"],
            ),
            ("worker", &["sagas:work", "sagas:read"]),
        ];
        for (name, grants) in builtin {
            roles.insert(name.to_string(), parse_all(grants.iter().copied())?);
        }
        for (name, role) in configured {
            if name.is_empty() || name.len() > 64 {
                bail!("role name {name:?} must be 1-64 characters");
            }
            let grants = parse_all(role.grants.iter().map(String::as_str))
                .map_err(|e| anyhow::anyhow!("role {name:?}: {e}"))?;
            roles.insert(name.clone(), grants);
        }
        Ok(Roles(roles))
    }

    /// The grants of the named roles; unknown names grant nothing.
    pub fn grants_of(&self, names: &[String]) -> Vec<Grant> {
        names
            .iter()
            .filter_map(|name| self.0.get(name))
            .flatten()
            .cloned()
            .collect()
    }

    /// Whether a role of this name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

fn parse_all<'a>(texts: impl Iterator<Item = &'a str>) -> anyhow::Result<Vec<Grant>> {
    let mut grants = Vec::new();
    for text in texts {
        grants.extend(parse_grant(text)?);
    }
    Ok(grants)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_parse_and_match() {
        let g = parse_grant("locks:acquire:orders/*").unwrap();
        assert_eq!(g.len(), 1);
        assert!(g[0].allows(Permission::LocksAcquire, Some("orders/1")));
        assert!(!g[0].allows(Permission::LocksAcquire, Some("payments/1")));
        assert!(!g[0].allows(Permission::LocksAdmin, Some("orders/1")));
        assert_eq!(parse_grant("locks:*").unwrap().len(), 3);
        assert_eq!(parse_grant("*").unwrap().len(), Permission::ALL.len());
        assert!(parse_grant("locks:steal").is_err());
        assert!(parse_grant("locks:acquire:orders/").is_err());
        let roles = Roles::new(&BTreeMap::new()).unwrap();
        let reader = roles.grants_of(&["reader".into()]);
        assert!(reader
            .iter()
            .any(|g| g.allows(Permission::CacheRead, Some("k"))));
        assert!(!reader
            .iter()
            .any(|g| g.allows(Permission::CacheWrite, Some("k"))));
        assert!(roles.grants_of(&["nobody".into()]).is_empty());
    }
}
