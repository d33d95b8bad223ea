//! The `--` comments pg_dump writes between statements that mean something to
//! us: object headers (progress) and the "dump complete" trailers
//! (truncation detection).

use super::Event;

/// The event a comment line between statements stands for, if any.
/// `comment` starts with `--` and may end with `\r\n`.
pub(super) fn parse(comment: &[u8]) -> Option<Event> {
    let text = String::from_utf8_lossy(comment);
    let body = text.trim_end().strip_prefix("--")?.strip_prefix(' ')?;
    match body {
        "PostgreSQL database dump complete" => return Some(Event::DumpComplete { cluster: false }),
        "PostgreSQL database cluster dump complete" => {
            return Some(Event::DumpComplete { cluster: true });
        }
        _ => {}
    }
    let rest = body.strip_prefix("Name: ").or_else(|| body.strip_prefix("Data for Name: "))?;
    object(rest)
}

/// `NAME; Type: KIND; Schema: SCHEMA[; Owner: OWNER][; Tablespace: TS]`, where
/// NAME (and SCHEMA, OWNER) may contain "; ". KIND is upper-case words
/// (`TABLE DATA`, `FK CONSTRAINT`), which tells the real separator apart.
fn object(rest: &str) -> Option<Event> {
    const TYPE: &str = "; Type: ";
    const SCHEMA: &str = "; Schema: ";
    for (at, _) in rest.match_indices(TYPE) {
        let after = &rest[at + TYPE.len()..];
        let Some(kind_end) = after.find(SCHEMA) else {
            continue;
        };
        let kind = &after[..kind_end];
        if kind.is_empty() || !kind.bytes().all(|b| b.is_ascii_uppercase() || b == b' ') {
            continue;
        }
        let schema_and_more = &after[kind_end + SCHEMA.len()..];
        let schema = ["; Owner: ", "; Tablespace: "]
            .iter()
            .find_map(|sep| schema_and_more.find(sep).map(|k| &schema_and_more[..k]))
            .unwrap_or(schema_and_more);
        return Some(Event::Object {
            name: rest[..at].to_string(),
            kind: kind.to_string(),
            schema: (schema != "-").then(|| schema.to_string()),
        });
    }
    None
}
