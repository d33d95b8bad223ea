//! Errors that are expected, and harmless, when a `--clean` dump is restored
//! into a fresh target.
//!
//! `pg_dumpall --clean` (what Kubegres's backup CronJob runs) starts with
//! `DROP DATABASE x;` and `DROP ROLE x;` for everything it will recreate, then
//! `CREATE ROLE postgres;` for the bootstrap superuser. Into a new cluster
//! these always fail the same way: the database or role does not exist, the
//! current user cannot be dropped, the bootstrap role already exists. A
//! restore into an empty target (which the agent checks first) loses nothing
//! by them, so they are counted as warnings, not errors. Everything else is an
//! error.

/// Why an error was tolerated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Harmless {
    /// `DROP ...` of something that does not exist in the (empty) target.
    DropMissing,
    /// `DROP ROLE` of the role the restore runs as, or of the bootstrap superuser.
    DropOwnRole,
    /// `CREATE ROLE` of a role that already exists (the bootstrap superuser);
    /// the `ALTER ROLE` that follows in the dump sets its attributes.
    CreateExistingRole,
}

/// Decides whether the failure of `sql` with `sqlstate` and `message` is one
/// of the known harmless errors of a clean dump.
pub fn classify(sql: &str, sqlstate: &str, message: &str) -> Option<Harmless> {
    let words = leading_words(sql, 3);
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    match (w.as_slice(), sqlstate) {
        // undefined_object, undefined_table, invalid_catalog_name (database),
        // invalid_schema_name, undefined_function
        (["DROP", ..], "42704" | "42P01" | "3D000" | "3F000" | "42883") => Some(Harmless::DropMissing),
        // object_in_use: "current user cannot be dropped"
        (["DROP", "ROLE", ..] | ["DROP", "USER", ..], "55006") => Some(Harmless::DropOwnRole),
        // dependent_objects_still_exist, only for the bootstrap superuser
        (["DROP", "ROLE", ..] | ["DROP", "USER", ..], "2BP01")
            if message.contains("required by the database system") =>
        {
            Some(Harmless::DropOwnRole)
        }
        // duplicate_object
        (["CREATE", "ROLE", ..] | ["CREATE", "USER", ..], "42710") => Some(Harmless::CreateExistingRole),
        _ => None,
    }
}

/// The first `n` words of a statement, upper-cased, skipping comments.
fn leading_words(sql: &str, n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    let mut rest = sql;
    loop {
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix("--") {
            rest = r.split_once('\n').map_or("", |(_, r)| r);
            continue;
        }
        if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map_or("", |(_, r)| r);
            continue;
        }
        break;
    }
    for word in rest.split(|c: char| !c.is_ascii_alphanumeric() && c != '_').filter(|w| !w.is_empty()) {
        out.push(word.to_ascii_uppercase());
        if out.len() == n {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_errors_of_pg_dumpall_clean_into_a_fresh_cluster_are_harmless() {
        // Exactly what PostgreSQL 15 answers to a Kubegres backup in a new cluster.
        let cases = [
            ("DROP DATABASE \"odd;db\"", "3D000", "database \"odd;db\" does not exist", Harmless::DropMissing),
            ("DROP ROLE app", "42704", "role \"app\" does not exist", Harmless::DropMissing),
            ("DROP ROLE postgres", "55006", "current user cannot be dropped", Harmless::DropOwnRole),
            (
                "DROP ROLE postgres",
                "2BP01",
                "cannot drop role postgres because it is required by the database system",
                Harmless::DropOwnRole,
            ),
            ("CREATE ROLE postgres", "42710", "role \"postgres\" already exists", Harmless::CreateExistingRole),
            ("-- c\nDROP TABLE public.t", "42P01", "table \"t\" does not exist", Harmless::DropMissing),
        ];
        for (sql, state, msg, want) in cases {
            assert_eq!(classify(sql, state, msg), Some(want), "{sql}");
        }
    }

    #[test]
    fn real_errors_stay_errors() {
        let cases = [
            ("CREATE TABLE t (a int)", "42P07", "relation \"t\" already exists"),
            ("INSERT INTO t VALUES (1)", "42P01", "relation \"t\" does not exist"),
            ("DROP ROLE app", "2BP01", "role \"app\" cannot be dropped because some objects depend on it"),
            ("CREATE DATABASE x", "42P04", "database \"x\" already exists"),
            ("ALTER ROLE postgres WITH SUPERUSER", "42704", "role does not exist"),
            ("COPY t FROM stdin", "22P02", "invalid input syntax"),
            ("DROPPED", "42704", "x"),
        ];
        for (sql, state, msg) in cases {
            assert_eq!(classify(sql, state, msg), None, "{sql}");
        }
    }
}
