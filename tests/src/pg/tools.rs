//! Client programs against a cluster: psql, queries, COPY, pg_dump,
//! pg_dumpall, pg_restore. Each panics with the program's output on failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{PgCluster, quote_ident};

pub(super) fn output_text(out: &Output) -> String {
    format!(
        "exit status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a command, panicking with its output when it fails.
pub fn run_ok(cmd: &mut Command, what: &str) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot start {:?}: {e}", cmd.get_program()));
    if !out.status.success() {
        panic!("{what} failed\n{}", output_text(&out));
    }
    out
}

impl PgCluster {
    /// `CREATE DATABASE` with a name that is quoted as needed.
    pub fn create_database(&self, name: &str) {
        self.psql("postgres", &format!("CREATE DATABASE {}", quote_ident(name)));
    }

    /// Runs SQL with psql (`-v ON_ERROR_STOP=1`) and returns stdout; panics on error.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = self.try_psql(db, sql);
        if !out.status.success() {
            panic!("psql on database {db:?} failed for:\n{sql}\n{}", output_text(&out));
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs SQL with psql and returns its output, whatever the outcome.
    pub fn try_psql(&self, db: &str, sql: &str) -> Output {
        self.command("psql")
            .env("PGDATABASE", db)
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .expect("cannot run psql")
    }

    /// Runs an SQL file with psql (`-v ON_ERROR_STOP=1`); panics on error.
    pub fn psql_file(&self, db: &str, path: &Path) {
        let out = self
            .command("psql")
            .env("PGDATABASE", db)
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f"])
            .arg(path)
            .output()
            .expect("cannot run psql");
        if !out.status.success() {
            panic!("psql -f {} on database {db:?} failed\n{}", path.display(), output_text(&out));
        }
    }

    /// Runs a query and returns its rows, each a vector of column texts
    /// (NULL shows as `\N`).
    pub fn query(&self, db: &str, sql: &str) -> Vec<Vec<String>> {
        let out = self
            .command("psql")
            .env("PGDATABASE", db)
            .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-F", "\x1f", "-R", "\x1e", "-P", "null=\\N", "-c", sql])
            .output()
            .expect("cannot run psql");
        if !out.status.success() {
            panic!("query on database {db:?} failed:\n{sql}\n{}", output_text(&out));
        }
        let text = String::from_utf8(out.stdout).expect("query output is not UTF-8");
        let text = text.strip_suffix('\n').unwrap_or(&text);
        if text.is_empty() {
            return Vec::new();
        }
        text.split('\x1e').map(|row| row.split('\x1f').map(str::to_string).collect()).collect()
    }

    /// Runs a query returning one value.
    pub fn query_one(&self, db: &str, sql: &str) -> String {
        let rows = self.query(db, sql);
        assert!(rows.len() == 1 && rows[0].len() == 1, "expected one value from {sql}, got {rows:?}");
        rows[0][0].clone()
    }

    /// The raw bytes that `COPY (query) TO STDOUT` writes.
    pub fn copy_out(&self, db: &str, query: &str) -> Vec<u8> {
        let sql = format!("COPY ({query}) TO STDOUT");
        let out = self.try_psql(db, &sql);
        if !out.status.success() {
            panic!("COPY on database {db:?} failed:\n{sql}\n{}", output_text(&out));
        }
        out.stdout
    }

    /// Runs `pg_dump` on `db` with `args` and returns what it writes on stdout.
    pub fn pg_dump(&self, db: &str, args: &[&str]) -> Vec<u8> {
        run_ok(self.command("pg_dump").env("PGDATABASE", db).args(args), &format!("pg_dump {args:?} of {db:?}")).stdout
    }

    /// Runs `pg_dump` on `db` with `args` writing into `path` (`-f path`);
    /// needed for the directory format.
    pub fn pg_dump_to(&self, db: &str, args: &[&str], path: &Path) -> PathBuf {
        run_ok(
            self.command("pg_dump").env("PGDATABASE", db).args(args).arg("-f").arg(path),
            &format!("pg_dump {args:?} of {db:?} into {}", path.display()),
        );
        path.to_path_buf()
    }

    /// Runs `pg_dumpall` with `args` and returns its output.
    pub fn pg_dumpall(&self, args: &[&str]) -> Vec<u8> {
        run_ok(self.command("pg_dumpall").args(args), &format!("pg_dumpall {args:?}")).stdout
    }

    /// Runs `pg_restore` into `db` with `args` on the archive at `path`.
    pub fn pg_restore(&self, db: &str, args: &[&str], path: &Path) {
        run_ok(
            self.command("pg_restore").args(["--exit-on-error", "-d", db]).args(args).arg(path),
            &format!("pg_restore {args:?} of {} into {db:?}", path.display()),
        );
    }

    /// The user tables (schema-qualified, quoted) of a database.
    pub fn user_tables(&self, db: &str) -> Vec<String> {
        self.query(
            db,
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r','p') AND n.nspname NOT IN ('pg_catalog','information_schema') \
             AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1",
        )
        .into_iter()
        .map(|mut r| r.remove(0))
        .collect()
    }
}
