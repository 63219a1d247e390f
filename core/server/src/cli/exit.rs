//! Exit codes of the client commands: one mapping from the shared error vocabulary
//! (`syros_vocab::ErrorKind`) to a process status, documented in docs/cli.md.

use syros_vocab::ErrorKind;

/// The command did what was asked.
pub const OK: u8 = 0;
/// Usage error: bad flags or arguments (clap), an unreadable or malformed input file, or a
/// request the server rejected as malformed (`invalid_argument`, `payload_too_large`).
pub const USAGE: u8 = 1;
/// The thing named does not exist, or the lock is not held (`not_found`, `lock_not_held`).
pub const NOT_FOUND: u8 = 2;
/// A precondition failed: wrong expected version, or the lock stayed held by someone else
/// (`version_conflict`, `lock_timeout`).
pub const CONFLICT: u8 = 3;
/// No or bad credentials, or not allowed (`unauthenticated`, `permission_denied`).
pub const DENIED: u8 = 4;
/// The server is unreachable or did not answer in time (`unavailable`, `deadline_exceeded`).
pub const UNAVAILABLE: u8 = 5;
/// The write may or may not have been applied (`outcome_unknown`): check before repeating it.
pub const OUTCOME_UNKNOWN: u8 = 6;
/// Anything else: a server bug or unexpected storage failure (`internal`, `unimplemented`,
/// `cancelled`, ...).
pub const FAILURE: u8 = 7;

/// The exit status of a command that failed with an error of `kind`: the one place that decides.
pub fn code_for(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::InvalidArgument | ErrorKind::PayloadTooLarge => USAGE,
        ErrorKind::NotFound | ErrorKind::LockNotHeld => NOT_FOUND,
        ErrorKind::VersionConflict | ErrorKind::LockTimeout => CONFLICT,
        ErrorKind::Unauthenticated | ErrorKind::PermissionDenied => DENIED,
        ErrorKind::Unavailable | ErrorKind::DeadlineExceeded => UNAVAILABLE,
        ErrorKind::OutcomeUnknown => OUTCOME_UNKNOWN,
        _ => FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_documented_code_and_groups_stay_apart() {
        for kind in ErrorKind::ALL {
            assert!((USAGE..=FAILURE).contains(&code_for(kind)), "{kind}");
        }
        assert_eq!(code_for(ErrorKind::NotFound), NOT_FOUND);
        assert_eq!(code_for(ErrorKind::VersionConflict), CONFLICT);
        assert_eq!(code_for(ErrorKind::Unauthenticated), DENIED);
        assert_eq!(code_for(ErrorKind::Unavailable), UNAVAILABLE);
        assert_ne!(code_for(ErrorKind::OutcomeUnknown), OK);
    }

    /// docs/cli.md's exit-code table names every error code once, in the row of its status.
    #[test]
    fn the_documented_table_matches() {
        let doc = include_str!("../../../../docs/cli.md");
        let rows: Vec<&str> = doc
            .lines()
            .skip_while(|line| !line.starts_with("| exit | meaning | error codes |"))
            .take_while(|line| line.starts_with('|'))
            .collect();
        assert!(
            rows.len() > 8,
            "the exit-code table is missing from docs/cli.md"
        );
        for kind in ErrorKind::ALL {
            let quoted = format!("`{}`", kind.code());
            let found: Vec<&&str> = rows.iter().filter(|row| row.contains(&quoted)).collect();
            assert_eq!(
                found.len(),
                1,
                "{quoted} must be in exactly one row of docs/cli.md"
            );
            let status = found[0].split('|').nth(1).unwrap().trim();
            assert_eq!(
                status,
                code_for(kind).to_string(),
                "{quoted} in docs/cli.md"
            );
        }
    }
}
