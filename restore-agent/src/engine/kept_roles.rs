//! `--keep-role`: roles of the target that a pg_dumpall script must not
//! drop, recreate or give the source's password.
//!
//! A Kubegres cluster's superuser (`postgres`) and its `replication` role
//! hold the passwords of the cluster's Secret: the operator's next
//! connection, every replica's `pg_basebackup` and Kubegres's own probes
//! use them. A backup of another cluster carries that cluster's
//! `ALTER ROLE ... PASSWORD`, and `DROP ROLE replication` fails on a real
//! Kubegres primary (its init script grants `pg_promote` to the role, 2BP01).
//! For a kept role the script's `DROP ROLE` and bare `CREATE ROLE` are
//! skipped and the `PASSWORD` clause is taken out of its `ALTER ROLE`;
//! everything else (attributes, settings, memberships, grants) is applied
//! as the dump says.

use std::borrow::Cow;

/// The roles to keep, as PostgreSQL names them (case-sensitive).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeptRoles(Vec<String>);

/// What becomes of one statement.
#[derive(Debug, PartialEq, Eq)]
pub enum Rewrite<'a> {
    /// Run it (unchanged or rewritten).
    Run(Cow<'a, str>),
    /// Do not run it; the text says why, for the log.
    Skip(&'static str),
}

impl KeptRoles {
    pub fn new(names: Vec<String>) -> KeptRoles {
        KeptRoles(names)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn keeps(&self, name: &str) -> bool {
        self.0.iter().any(|n| n == name)
    }

    /// The statement to run in place of `sql`.
    pub fn rewrite<'a>(&self, sql: &'a str) -> Rewrite<'a> {
        if self.is_empty() {
            return Rewrite::Run(Cow::Borrowed(sql));
        }
        let mut tokens = Tokens { rest: sql };
        let first = tokens.word();
        let second = tokens.word();
        let (Some(first), Some(second)) = (first, second) else {
            return Rewrite::Run(Cow::Borrowed(sql));
        };
        if !matches!(second.to_ascii_uppercase().as_str(), "ROLE" | "USER") {
            return Rewrite::Run(Cow::Borrowed(sql));
        }
        match first.to_ascii_uppercase().as_str() {
            "DROP" => {
                let mut name = tokens.name();
                if name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case("if")) {
                    let _exists = tokens.word();
                    name = tokens.name();
                }
                // pg_dumpall drops one role per statement; a list is left alone
                // (and fails or not as PostgreSQL decides).
                match name {
                    Some(n) if self.keeps(&n) && tokens.at_end() => Rewrite::Skip("DROP ROLE of a kept role"),
                    _ => Rewrite::Run(Cow::Borrowed(sql)),
                }
            }
            "CREATE" => match tokens.name() {
                Some(n) if self.keeps(&n) && tokens.at_end() => Rewrite::Skip("CREATE ROLE of a kept role"),
                _ => Rewrite::Run(Cow::Borrowed(sql)),
            },
            "ALTER" => match tokens.name() {
                Some(n) if self.keeps(&n) => match without_password(sql, sql.len() - tokens.rest.len()) {
                    Some(rewritten) => Rewrite::Run(Cow::Owned(rewritten)),
                    None => Rewrite::Run(Cow::Borrowed(sql)),
                },
                _ => Rewrite::Run(Cow::Borrowed(sql)),
            },
            _ => Rewrite::Run(Cow::Borrowed(sql)),
        }
    }
}

/// `sql` without its `[ENCRYPTED] PASSWORD 'literal' | NULL` clause (looked
/// for after byte `from`, outside quotes), or `None` when it has none.
fn without_password(sql: &str, from: usize) -> Option<String> {
    let mut tokens = Tokens { rest: &sql[from..] };
    let mut previous_start: Option<usize> = None;
    loop {
        let start = sql.len() - tokens.rest.trim_start().len();
        let token = tokens.token()?;
        if let Token::Word(w) = &token
            && w.eq_ignore_ascii_case("password")
        {
            let clause_start = match previous_start {
                Some(p) if sql[p..start].trim().eq_ignore_ascii_case("encrypted") => p,
                _ => start,
            };
            let value = tokens.token()?;
            if !matches!(value, Token::Literal | Token::Word(_)) {
                return None;
            }
            let end = sql.len() - tokens.rest.len();
            let mut out = String::with_capacity(sql.len());
            out.push_str(sql[..clause_start].trim_end());
            out.push_str(&sql[end..]);
            return Some(out);
        }
        previous_start = Some(start);
    }
}

enum Token {
    Word(String),
    /// A quoted identifier, unquoted.
    Quoted(String),
    Literal,
    Other,
}

/// A small tokenizer for role statements: words, "quoted identifiers",
/// 'string literals' (with '' inside), comments skipped.
struct Tokens<'a> {
    rest: &'a str,
}

impl Tokens<'_> {
    fn skip_blank(&mut self) {
        loop {
            self.rest = self.rest.trim_start();
            if let Some(r) = self.rest.strip_prefix("--") {
                self.rest = r.split_once('\n').map_or("", |(_, r)| r);
            } else if let Some(r) = self.rest.strip_prefix("/*") {
                self.rest = r.split_once("*/").map_or("", |(_, r)| r);
            } else {
                return;
            }
        }
    }

    fn at_end(&mut self) -> bool {
        self.skip_blank();
        let r = self.rest.trim_start_matches(';');
        Tokens { rest: r }.skip_and_empty()
    }

    fn skip_and_empty(mut self) -> bool {
        self.skip_blank();
        self.rest.is_empty()
    }

    fn token(&mut self) -> Option<Token> {
        self.skip_blank();
        let mut chars = self.rest.char_indices();
        let (_, c) = chars.next()?;
        if c == '"' || c == '\'' {
            let mut out = String::new();
            let body = &self.rest[1..];
            let mut iter = body.char_indices().peekable();
            while let Some((i, ch)) = iter.next() {
                if ch == c {
                    if iter.peek().is_some_and(|(_, n)| *n == c) {
                        out.push(c);
                        iter.next();
                        continue;
                    }
                    self.rest = &body[i + 1..];
                    return Some(if c == '"' { Token::Quoted(out) } else { Token::Literal });
                }
                out.push(ch);
            }
            // Unterminated: nothing more to read.
            self.rest = "";
            return None;
        }
        if c.is_alphanumeric() || c == '_' {
            let end =
                self.rest.find(|ch: char| !(ch.is_alphanumeric() || ch == '_' || ch == '$')).unwrap_or(self.rest.len());
            let word = self.rest[..end].to_string();
            self.rest = &self.rest[end..];
            return Some(Token::Word(word));
        }
        self.rest = &self.rest[c.len_utf8()..];
        Some(Token::Other)
    }

    fn word(&mut self) -> Option<String> {
        match self.token()? {
            Token::Word(w) => Some(w),
            _ => None,
        }
    }

    /// A role name: a bare word folds to lower case, a quoted one is taken as is.
    fn name(&mut self) -> Option<String> {
        match self.token()? {
            Token::Word(w) => Some(w.to_lowercase()),
            Token::Quoted(q) => Some(q),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept() -> KeptRoles {
        KeptRoles::new(vec!["postgres".into(), "replication".into()])
    }

    fn run(sql: &str) -> String {
        match kept().rewrite(sql) {
            Rewrite::Run(s) => s.into_owned(),
            Rewrite::Skip(why) => panic!("{sql:?} was skipped: {why}"),
        }
    }

    fn skipped(sql: &str) -> bool {
        matches!(kept().rewrite(sql), Rewrite::Skip(_))
    }

    #[test]
    fn drops_and_bare_creates_of_kept_roles_are_skipped() {
        assert!(skipped("DROP ROLE replication;"));
        assert!(skipped("DROP ROLE IF EXISTS postgres;"));
        assert!(skipped("drop role \"replication\""));
        assert!(skipped("CREATE ROLE replication;"));
        assert!(skipped("-- Roles\nCREATE ROLE postgres;"));
        // Other roles, other statements and case-distinct quoted names run.
        assert_eq!(run("DROP ROLE app;"), "DROP ROLE app;");
        assert_eq!(run("CREATE ROLE app;"), "CREATE ROLE app;");
        assert_eq!(run("DROP ROLE \"Replication\";"), "DROP ROLE \"Replication\";");
        assert_eq!(run("DROP ROLE replication, app;"), "DROP ROLE replication, app;");
        assert_eq!(run("CREATE ROLE replication LOGIN;"), "CREATE ROLE replication LOGIN;");
        assert_eq!(run("DROP TABLE replication;"), "DROP TABLE replication;");
        assert_eq!(run("DROP DATABASE postgres;"), "DROP DATABASE postgres;");
    }

    #[test]
    fn the_password_of_a_kept_role_is_taken_out_of_alter_role() {
        let alter = "ALTER ROLE replication WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN REPLICATION \
                     NOBYPASSRLS PASSWORD 'SCRAM-SHA-256$4096:abc==$def=:ghi=';";
        assert_eq!(
            run(alter),
            "ALTER ROLE replication WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN REPLICATION NOBYPASSRLS;"
        );
        assert_eq!(
            run("ALTER ROLE postgres WITH SUPERUSER ENCRYPTED PASSWORD 'it''s' LOGIN;"),
            "ALTER ROLE postgres WITH SUPERUSER LOGIN;"
        );
        assert_eq!(run("ALTER USER postgres PASSWORD NULL"), "ALTER USER postgres");
        // A role that is not kept keeps the dump's password.
        let other = "ALTER ROLE app WITH LOGIN PASSWORD 'md5abc';";
        assert_eq!(run(other), other);
        // Settings and renames without a password go through unchanged.
        assert_eq!(run("ALTER ROLE postgres SET search_path = a;"), "ALTER ROLE postgres SET search_path = a;");
        // A quoted identifier named "password" is not the clause.
        let odd = "ALTER ROLE replication SET \"password\" = 'x';";
        assert_eq!(run(odd), odd);
    }

    #[test]
    fn nothing_kept_changes_nothing() {
        let none = KeptRoles::default();
        assert_eq!(none.rewrite("DROP ROLE postgres;"), Rewrite::Run(Cow::Borrowed("DROP ROLE postgres;")));
    }
}
