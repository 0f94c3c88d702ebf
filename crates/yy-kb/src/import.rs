//! Bulk import: a JSON array of entries, or CSV with a header row.

use std::collections::HashSet;
use std::fmt;

use crate::entry::{Entry, Format};

/// Most entries one import may hold.
pub const MAX_IMPORT_ENTRIES: usize = 100_000;

/// Why an import was refused, with where: the line (1-based, in the input) and, once the
/// records are read, the entry (0-based position among the entries) and its field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    /// The line the problem is on or, for an entry, the line its record starts on. `None` when
    /// the input format cannot tell (a JSON entry's own validation).
    pub line: Option<usize>,
    /// The entry's position (0-based) among the imported entries, when one entry is at fault.
    pub entry: Option<usize>,
    /// The field at fault (`title`, `questions[1]`, …), when one is.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut wrote = false;
        let mut sep = |f: &mut fmt::Formatter<'_>| {
            let s = if wrote { ", " } else { "" };
            wrote = true;
            f.write_str(s)
        };
        if let Some(line) = self.line {
            sep(f)?;
            write!(f, "line {line}")?;
        }
        if let Some(entry) = self.entry {
            sep(f)?;
            write!(f, "entry {entry}")?;
        }
        if let Some(field) = &self.field {
            sep(f)?;
            write!(f, "field `{field}`")?;
        }
        if wrote {
            f.write_str(": ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ImportError {}

impl ImportError {
    fn at_line(line: usize, message: impl Into<String>) -> Self {
        ImportError {
            line: Some(line),
            entry: None,
            field: None,
            message: message.into(),
        }
    }
}

/// Validates every entry and refuses repeated ids, naming the entry, its line if known, and the
/// field.
fn check_entries(entries: &[Entry], lines: Option<&[usize]>) -> Result<(), ImportError> {
    if entries.len() > MAX_IMPORT_ENTRIES {
        return Err(ImportError {
            line: None,
            entry: None,
            field: None,
            message: format!(
                "{} entries; one import takes at most {MAX_IMPORT_ENTRIES}",
                entries.len()
            ),
        });
    }
    let mut seen = HashSet::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let line = lines.and_then(|l| l.get(i).copied());
        if let Err(err) = e.validate() {
            return Err(ImportError {
                line,
                entry: Some(i),
                field: Some(err.field),
                message: err.message,
            });
        }
        if !seen.insert(e.id.as_str()) {
            return Err(ImportError {
                line,
                entry: Some(i),
                field: Some("id".into()),
                message: format!("the id {:?} appears more than once", e.id),
            });
        }
    }
    Ok(())
}

/// Reads a JSON array of entries (the [`Entry`] serde format) and validates each.
///
/// A syntax or type error names its line and, inside an entry, the entry and the field
/// (`entry 3, field questions[1]`); a validation error names the entry and the field.
pub fn import_json(input: &str) -> Result<Vec<Entry>, ImportError> {
    let de = &mut serde_json::Deserializer::from_str(input);
    let entries: Vec<Entry> = serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        // The path reads `[3].questions[1]`: the entry's position, then the field inside it.
        let (entry, field) = match path.strip_prefix('[').and_then(|p| p.split_once(']')) {
            Some((index, rest)) => (
                index.parse().ok(),
                Some(rest.trim_start_matches('.').to_owned()).filter(|f| !f.is_empty()),
            ),
            None => (None, None),
        };
        let message = inner.to_string();
        // serde_json appends " at line L column C"; the line has its own place here.
        let message = match message.rfind(" at line ") {
            Some(at) => message[..at].to_owned(),
            None => message,
        };
        ImportError {
            line: Some(inner.line()).filter(|&l| l > 0),
            entry,
            field,
            message,
        }
    })?;
    check_entries(&entries, None)?;
    Ok(entries)
}

/// The CSV columns, in the order [`export_csv`] writes them.
pub const CSV_COLUMNS: [&str; 8] = [
    "id",
    "title",
    "questions",
    "answer",
    "format",
    "tags",
    "locale",
    "enabled",
];

/// Reads entries from CSV (RFC 4180) and validates each.
///
/// - The first row names the columns, in any order, case-insensitively: `id`, `title`,
///   `answer` and `locale` are required; `questions`, `tags`, `format` and `enabled` are optional.
///   An unknown column is an error (a misspelt name would otherwise lose data).
/// - Fields are separated by commas and records by line breaks (CRLF or LF). A field that holds
///   a comma, a quote or a line break is quoted with `"`, and a quote inside it is doubled.
///   A UTF-8 byte-order mark at the start is skipped; empty lines are skipped.
/// - `questions` and `tags` hold several values separated by `|`; a literal `|` is written `\|`.
///   Blank values are dropped (`a||b` is two values).
/// - `format` is `text` or `markdown` (empty: `text`); `enabled` is `true`/`false`, `yes`/`no`
///   or `1`/`0` (empty: `true`).
///
/// Errors name the line and, for a value, the column.
pub fn import_csv(input: &str) -> Result<Vec<Entry>, ImportError> {
    let input = input.strip_prefix('\u{feff}').unwrap_or(input);
    let records = parse_csv(input)?;
    let mut records = records.into_iter();
    let Some(header) = records.next() else {
        return Err(ImportError::at_line(1, "the input is empty; a header row is required"));
    };
    let mut columns: Vec<usize> = Vec::with_capacity(header.fields.len());
    for name in &header.fields {
        let key = name.trim().to_ascii_lowercase();
        let Some(col) = CSV_COLUMNS.iter().position(|c| *c == key) else {
            return Err(ImportError::at_line(
                header.line,
                format!("unknown column {name:?}; the columns are {}", CSV_COLUMNS.join(", ")),
            ));
        };
        if columns.contains(&col) {
            return Err(ImportError::at_line(
                header.line,
                format!("the column {key:?} appears twice"),
            ));
        }
        columns.push(col);
    }
    for required in ["id", "title", "answer", "locale"] {
        let col = CSV_COLUMNS.iter().position(|c| *c == required).unwrap_or_default();
        if !columns.contains(&col) {
            return Err(ImportError::at_line(
                header.line,
                format!("the required column {required:?} is missing"),
            ));
        }
    }

    let mut entries = Vec::new();
    let mut lines = Vec::new();
    for (i, record) in records.enumerate() {
        if entries.len() >= MAX_IMPORT_ENTRIES {
            return Err(ImportError::at_line(
                record.line,
                format!("more than {MAX_IMPORT_ENTRIES} entries; one import takes at most that many"),
            ));
        }
        if record.fields.len() != columns.len() {
            return Err(ImportError {
                line: Some(record.line),
                entry: Some(i),
                field: None,
                message: format!("{} fields; the header has {}", record.fields.len(), columns.len()),
            });
        }
        let mut entry = Entry {
            id: String::new(),
            title: String::new(),
            questions: Vec::new(),
            answer: String::new(),
            format: Format::Text,
            tags: Vec::new(),
            locale: String::new(),
            enabled: true,
        };
        for (value, &col) in record.fields.into_iter().zip(&columns) {
            let bad = |message: String| ImportError {
                line: Some(record.line),
                entry: Some(i),
                field: Some(CSV_COLUMNS[col].to_owned()),
                message,
            };
            match CSV_COLUMNS[col] {
                "id" => entry.id = value.trim().to_owned(),
                "title" => entry.title = value,
                "questions" => entry.questions = split_list(&value),
                "answer" => entry.answer = value,
                "format" => {
                    entry.format = match value.trim().to_ascii_lowercase().as_str() {
                        "" | "text" => Format::Text,
                        "markdown" | "md" => Format::Markdown,
                        other => return Err(bad(format!("{other:?} is not text or markdown"))),
                    }
                }
                "tags" => entry.tags = split_list(&value),
                "locale" => entry.locale = value.trim().to_owned(),
                _ => {
                    entry.enabled = match value.trim().to_ascii_lowercase().as_str() {
                        "" | "true" | "yes" | "1" => true,
                        "false" | "no" | "0" => false,
                        other => return Err(bad(format!("{other:?} is not true or false"))),
                    }
                }
            }
        }
        entries.push(entry);
        lines.push(record.line);
    }
    check_entries(&entries, Some(&lines))?;
    Ok(entries)
}

/// Writes entries as CSV in the format [`import_csv`] reads, every column present.
pub fn export_csv(entries: &[Entry]) -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push_str("\r\n");
    for e in entries {
        let join = |values: &[String]| {
            values
                .iter()
                .map(|v| v.replace('|', "\\|"))
                .collect::<Vec<_>>()
                .join("|")
        };
        let format = match e.format {
            Format::Text => "text",
            Format::Markdown => "markdown",
        };
        let fields = [
            e.id.clone(),
            e.title.clone(),
            join(&e.questions),
            e.answer.clone(),
            format.to_owned(),
            join(&e.tags),
            e.locale.clone(),
            e.enabled.to_string(),
        ];
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            if f.contains([',', '"', '\r', '\n']) || f.starts_with(' ') || f.ends_with(' ') {
                out.push('"');
                out.push_str(&f.replace('"', "\"\""));
                out.push('"');
            } else {
                out.push_str(f);
            }
        }
        out.push_str("\r\n");
    }
    out
}

/// `a|b\|c||d ` → `["a", "b|c", "d"]`.
fn split_list(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cur.push('|');
                chars.next();
            }
            '|' => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect()
}

/// One CSV record and the line it starts on.
#[derive(Debug, PartialEq, Eq)]
struct Record {
    line: usize,
    fields: Vec<String>,
}

/// RFC 4180, accepting LF as well as CRLF line breaks and skipping empty lines. A quote inside
/// an unquoted field, text after a closing quote, or an unclosed quote is an error naming its
/// line.
fn parse_csv(input: &str) -> Result<Vec<Record>, ImportError> {
    let mut records = Vec::new();
    let mut fields: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut line = 1usize;
    let mut record_line = 1usize;
    let mut chars = input.chars().peekable();
    // Whether the current record has any field yet (an empty line has none).
    let mut started = false;
    loop {
        // At the start of a field.
        match chars.peek().copied() {
            None => {
                if started {
                    fields.push(std::mem::take(&mut field));
                    records.push(Record {
                        line: record_line,
                        fields: std::mem::take(&mut fields),
                    });
                }
                return Ok(records);
            }
            Some('"') => {
                chars.next();
                started = true;
                let opened = line;
                loop {
                    match chars.next() {
                        None => {
                            return Err(ImportError::at_line(opened, "a quoted field is never closed"));
                        }
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            field.push('"');
                        }
                        Some('"') => break,
                        Some(c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            field.push(c);
                        }
                    }
                }
                match chars.peek().copied() {
                    None | Some(',' | '\r' | '\n') => {}
                    Some(c) => {
                        return Err(ImportError::at_line(
                            line,
                            format!("{c:?} after a closing quote; a quote inside a quoted field is written \"\""),
                        ));
                    }
                }
            }
            Some(_) => {
                while let Some(&c) = chars.peek() {
                    match c {
                        ',' | '\n' => break,
                        '\r' if matches!(chars.clone().nth(1), Some('\n') | None) => break,
                        '"' => {
                            return Err(ImportError::at_line(
                                line,
                                "a quote inside an unquoted field; quote the whole field and double the quote",
                            ));
                        }
                        c => {
                            started = true;
                            field.push(c);
                            chars.next();
                        }
                    }
                }
            }
        }
        // After a field: a separator, a line break or the end. The field loops above stop at
        // nothing else.
        match chars.next() {
            Some(',') => {
                started = true;
                fields.push(std::mem::take(&mut field));
            }
            None => {
                if started {
                    fields.push(std::mem::take(&mut field));
                    records.push(Record {
                        line: record_line,
                        fields: std::mem::take(&mut fields),
                    });
                }
                return Ok(records);
            }
            Some(c) => {
                if c == '\r' && chars.peek() == Some(&'\n') {
                    chars.next();
                }
                if started {
                    fields.push(std::mem::take(&mut field));
                    records.push(Record {
                        line: record_line,
                        fields: std::mem::take(&mut fields),
                    });
                }
                started = false;
                line += 1;
                record_line = line;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Rows = Vec<(usize, Vec<String>)>;

    fn rows(input: &str) -> Rows {
        parse_csv(input)
            .unwrap()
            .into_iter()
            .map(|r| (r.line, r.fields))
            .collect()
    }

    fn expect(rows: &[(usize, &[&str])]) -> Rows {
        rows.iter()
            .map(|(line, fields)| (*line, fields.iter().map(|f| (*f).to_owned()).collect()))
            .collect()
    }

    #[test]
    fn rfc4180_records() {
        assert_eq!(rows("a,b\r\n1,2\r\n"), expect(&[(1, &["a", "b"]), (2, &["1", "2"])]));
        assert_eq!(rows("a,b\n1,2"), expect(&[(1, &["a", "b"]), (2, &["1", "2"])]));
        assert_eq!(rows("a,,\n"), expect(&[(1, &["a", "", ""])]));
        assert_eq!(rows(",\n"), expect(&[(1, &["", ""])]));
        assert_eq!(
            rows("\"x, \"\"y\"\"\",\"multi\r\nline\"\nnext,row\n"),
            expect(&[(1, &["x, \"y\"", "multi\r\nline"]), (3, &["next", "row"])])
        );
        assert_eq!(rows("\n\na\n\nb\n"), expect(&[(3, &["a"]), (5, &["b"])]));
        assert_eq!(rows("\"\"\n"), expect(&[(1, &[""])]));
        assert_eq!(rows("a\rb\n"), expect(&[(1, &["a\rb"])]));
        assert_eq!(rows("a\r"), expect(&[(1, &["a"])]));
        assert!(rows("").is_empty());
    }

    #[test]
    fn malformed_csv_names_the_line() {
        let err = parse_csv("a,b\n1,\"open\n2,3\n").unwrap_err();
        assert_eq!(err.line, Some(2));
        assert!(err.message.contains("never closed"));
        let err = parse_csv("a\nx\"y\n").unwrap_err();
        assert_eq!(err.line, Some(2));
        let err = parse_csv("a\n\"x\"y\n").unwrap_err();
        assert_eq!(err.line, Some(2));
    }

    const HEADER: &str = "id,title,questions,answer,format,tags,locale,enabled\n";

    #[test]
    fn csv_entries() {
        let input = format!(
            "\u{feff}{HEADER}r1,退货政策,怎么退货|可以退吗||,\"七天无理由，\n包邮\",,returns|售后,zh-CN,\n\
             r2,Pipes,a \\| b|c,\"Say \"\"hi\"\"\",markdown,,en,no\n"
        );
        let entries = import_csv(&input).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].questions, ["怎么退货", "可以退吗"]);
        assert_eq!(entries[0].answer, "七天无理由，\n包邮");
        assert_eq!(entries[0].tags, ["returns", "售后"]);
        assert!(entries[0].enabled);
        assert_eq!(entries[1].questions, ["a | b", "c"]);
        assert_eq!(entries[1].answer, "Say \"hi\"");
        assert_eq!(entries[1].format, Format::Markdown);
        assert!(!entries[1].enabled);
        // Columns in any order, optional ones left out.
        let entries = import_csv("LOCALE,answer,Title,id\nen,a,t,x1\n").unwrap();
        assert_eq!(entries[0].id, "x1");
        assert!(entries[0].questions.is_empty());
    }

    #[test]
    fn export_round_trips() {
        let input =
            format!("{HEADER}r1,\"Title, with comma\",\"q \"\"1\"\"|q\\|2\",\"line\nbreak\",markdown,a|b,en,false\n");
        let entries = import_csv(&input).unwrap();
        assert_eq!(import_csv(&export_csv(&entries)).unwrap(), entries);
    }

    #[test]
    fn csv_errors_name_line_and_field() {
        let err = import_csv(&format!("{HEADER}r1,t,q,a,text,,en,true\nr2,t,q,a,html,,en,true\n")).unwrap_err();
        assert_eq!(
            (err.line, err.entry, err.field.as_deref()),
            (Some(3), Some(1), Some("format"))
        );
        let err = import_csv(&format!("{HEADER}r1,t,q,a,text,,en,maybe\n")).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("enabled"));
        let err = import_csv(&format!(
            "{HEADER}r1,t,q,\"multi\nline\",text,,en,true\nr2,,q,a,text,,en,true\n"
        ))
        .unwrap_err();
        assert_eq!((err.line, err.field.as_deref()), (Some(4), Some("title")));
        let err = import_csv(&format!("{HEADER}r1,t,q,a,text,,en,true\nr1,t,q,a,text,,en,true\n")).unwrap_err();
        assert_eq!((err.line, err.field.as_deref()), (Some(3), Some("id")));
        let err = import_csv(&format!("{HEADER}r1,t,q,a\n")).unwrap_err();
        assert_eq!(err.line, Some(2));
        assert!(err.message.contains("4 fields"), "{err}");
        let err = import_csv("id,title,answer\n").unwrap_err();
        assert!(err.message.contains("locale"), "{err}");
        let err = import_csv("id,title,answer,locale,colour\n").unwrap_err();
        assert!(err.message.contains("colour"), "{err}");
        assert!(import_csv("").is_err());
        assert!(import_csv("\u{feff}").is_err());
        assert_eq!(
            err.to_string(),
            format!("line 1: {}", err.message),
            "the display leads with the place"
        );
    }

    #[test]
    fn json_entries_and_errors() {
        let ok = r#"[{"id":"a","title":"t","answer":"x","locale":"en","questions":["q1","q2"],"tags":["t1"]}]"#;
        assert_eq!(import_json(ok).unwrap()[0].questions, ["q1", "q2"]);
        assert!(import_json("[]").unwrap().is_empty());

        let err = import_json("[\n{\"id\":\"a\",\"title\":\"t\",\"answer\":\"x\",\"locale\":\"en\"},\n{\"id\":\"b\",\"title\":\"t\",\"answer\":\"x\",\"locale\":\"en\",\"questions\":[\"ok\", 7]}\n]").unwrap_err();
        assert_eq!(
            (err.line, err.entry, err.field.as_deref()),
            (Some(3), Some(1), Some("questions[1]"))
        );
        assert_eq!(
            err.to_string(),
            format!("line 3, entry 1, field `questions[1]`: {}", err.message)
        );

        let err = import_json(r#"[{"id":"a","title":"","answer":"x","locale":"en"}]"#).unwrap_err();
        assert_eq!((err.entry, err.field.as_deref()), (Some(0), Some("title")));
        let err = import_json(
            r#"[{"id":"a","title":"t","answer":"x","locale":"en"},{"id":"a","title":"t","answer":"x","locale":"en"}]"#,
        )
        .unwrap_err();
        assert_eq!((err.entry, err.field.as_deref()), (Some(1), Some("id")));
        let err = import_json("[{\"id\":\"a\"").unwrap_err();
        assert_eq!(err.line, Some(1));
        assert!(import_json("{}").is_err());
        assert!(import_json("").is_err());
    }

    #[test]
    fn odd_input_never_panics() {
        for input in [
            "\"",
            "\"\"\"",
            ",,,\r",
            "\r\r\n\"",
            "a\"",
            "😀,\"😀\"\"\"\n",
            "\u{0}",
            "\\|\\",
        ] {
            let _ = parse_csv(input);
            let _ = import_csv(input);
            let _ = import_json(input);
        }
        assert_eq!(split_list("\\"), ["\\"]);
        assert_eq!(split_list("a\\|"), ["a|"]);
    }
}
