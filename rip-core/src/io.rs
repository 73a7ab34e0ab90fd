//! The pipeline's JSON input and output.
//!
//! Input is NDJSON (one spec per line), concatenated JSON objects, or a single
//! JSON array of specs. Output is NDJSON: each input record, untouched, plus
//! one key added by the tool that saw it.

use std::collections::HashSet;
use std::fmt;
use std::io::{self, Read, Write};

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::spec::AppSpec;
use crate::validate::{check_fleet, check_record, InputError};

/// One app record: the JSON as given and the spec it resolves to.
#[derive(Debug, Clone)]
pub struct Record {
    /// 1-based position in the input.
    pub index: usize,
    /// 1-based line where the record starts (0 when built from flags).
    pub line: usize,
    /// The record exactly as read, unknown keys and earlier tools' results
    /// included; written back out with the tool's own key added.
    pub raw: Map<String, Value>,
    /// The spec with defaults resolved.
    pub spec: AppSpec,
}

impl Record {
    /// The result another tool added earlier in the pipeline, if any.
    pub fn result_of(&self, key: &str) -> Option<&Value> {
        self.raw.get(key)
    }

    /// Build an [`InputError`] about this record.
    pub fn error(&self, field: &str, message: impl Into<String>) -> InputError {
        InputError {
            record: self.index,
            line: self.line,
            app: Some(self.spec.name.clone()),
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

fn line_of(text: &[u8], offset: usize) -> usize {
    1 + text[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

fn skip_ws(text: &[u8], mut pos: usize) -> usize {
    while pos < text.len() && text[pos].is_ascii_whitespace() {
        pos += 1;
    }
    pos
}

fn syntax_error(record: usize, line: usize, message: String) -> InputError {
    InputError {
        record,
        line,
        app: None,
        field: String::new(),
        message,
    }
}

/// Walks a JSON value and fails on the first object with a key given twice:
/// JSON parsers keep the last one silently, so `{"name":"a","name":"b"}`
/// would mean something other than what a reader of the file sees.
struct NoDuplicateKeys;

impl<'de> Deserialize<'de> for NoDuplicateKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NoDuplicateKeys)
    }
}

impl<'de> Visitor<'de> for NoDuplicateKeys {
    type Value = NoDuplicateKeys;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_unit<E>(self) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<NoDuplicateKeys>()?.is_some() {}
        Ok(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self, A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!("the key {key:?} is given twice")));
            }
            map.next_value::<NoDuplicateKeys>()?;
        }
        Ok(self)
    }
}

/// Keys of the app spec (see [`crate::spec::RawSpec`]); others are passed
/// through untouched, with a warning unless they look deliberate.
const SPEC_KEYS: &[&str] = &[
    "name",
    "user",
    "group",
    "home",
    "shell",
    "description",
    "exec",
    "workdir",
    "listen",
    "metrics",
    "backups",
    "env",
    "env_files",
    "secrets",
    "runtime",
    "profile",
    "rw_paths",
    "limits",
    "outbound_https",
    "host",
    "labels",
    "perms",
];

/// Unknown top-level keys that are probably typos: not a spec key, not an
/// earlier tool's result (`rip_*`) and not an extension (`x-*`, `x_*`).
pub fn unknown_keys(raw: &Map<String, Value>) -> Vec<&str> {
    raw.keys()
        .map(String::as_str)
        .filter(|k| {
            !SPEC_KEYS.contains(k)
                && !k.starts_with("rip_")
                && !k.starts_with("x-")
                && !k.starts_with("x_")
        })
        .collect()
}

/// Split input text into JSON values with the line each starts on.
fn split_values(text: &[u8]) -> Result<Vec<(usize, Value)>, InputError> {
    let start = skip_ws(text, 0);
    let in_array = text.get(start) == Some(&b'[');
    let mut pos = if in_array { start + 1 } else { start };
    let mut out = Vec::new();
    loop {
        pos = skip_ws(text, pos);
        if in_array && text.get(pos) == Some(&b']') {
            let rest = skip_ws(text, pos + 1);
            if rest < text.len() {
                return Err(syntax_error(
                    out.len() + 1,
                    line_of(text, rest),
                    "unexpected data after the closing ']' of the array".into(),
                ));
            }
            return Ok(out);
        }
        if pos >= text.len() {
            if in_array {
                return Err(syntax_error(
                    out.len() + 1,
                    line_of(text, pos),
                    "the array is not closed with ']'".into(),
                ));
            }
            return Ok(out);
        }
        let line = line_of(text, pos);
        let mut stream = serde_json::Deserializer::from_slice(&text[pos..]).into_iter::<Value>();
        match stream.next() {
            Some(Ok(v)) => {
                let end = pos + stream.byte_offset();
                if let Err(e) = serde_json::from_slice::<NoDuplicateKeys>(&text[pos..end]) {
                    return Err(syntax_error(
                        out.len() + 1,
                        line + e.line().saturating_sub(1),
                        e.to_string(),
                    ));
                }
                out.push((line, v))
            }
            Some(Err(e)) => {
                return Err(syntax_error(
                    out.len() + 1,
                    line + e.line().saturating_sub(1),
                    format!("invalid JSON: {e}"),
                ))
            }
            None => return Ok(out),
        }
        pos += stream.byte_offset();
        if in_array {
            pos = skip_ws(text, pos);
            match text.get(pos) {
                Some(b',') => pos += 1,
                Some(b']') => {}
                _ => {
                    return Err(syntax_error(
                        out.len() + 1,
                        line_of(text, pos),
                        "expected ',' or ']' after an array element".into(),
                    ))
                }
            }
        }
    }
}

/// Parse and validate every record of `text`, then check the fleet as a
/// whole. Nothing is returned unless every record is valid.
pub fn parse_records(text: &[u8]) -> Result<Vec<Record>, InputError> {
    let mut records = Vec::new();
    for (i, (line, value)) in split_values(text)?.into_iter().enumerate() {
        let index = i + 1;
        let Value::Object(raw) = value else {
            return Err(syntax_error(
                index,
                line,
                "each record must be a JSON object".into(),
            ));
        };
        let app = raw.get("name").and_then(Value::as_str).map(str::to_owned);
        let spec = check_record(&raw).map_err(|e| InputError {
            record: index,
            line,
            app: app.clone(),
            field: e.field,
            message: e.message,
        })?;
        records.push(Record {
            index,
            line,
            raw,
            spec,
        });
    }
    let specs: Vec<&AppSpec> = records.iter().map(|r| &r.spec).collect();
    check_fleet(&specs).map_err(|(i, e)| records[i].error(&e.field, e.message))?;
    Ok(records)
}

/// Read all of `reader` and parse it with [`parse_records`].
pub fn read_records(mut reader: impl Read) -> anyhow::Result<Vec<Record>> {
    let mut text = Vec::new();
    reader.read_to_end(&mut text)?;
    Ok(parse_records(&text)?)
}

/// Build a record from a JSON object given on the command line.
pub fn record_from_value(raw: Map<String, Value>) -> Result<Record, InputError> {
    let text = serde_json::to_vec(&Value::Object(raw))
        .map_err(|e| syntax_error(1, 0, format!("cannot encode the app given by flags: {e}")))?;
    let mut records = parse_records(&text)?;
    for r in &mut records {
        r.line = 0;
    }
    Ok(records.remove(0))
}

/// Write one output line: the record's raw JSON with `key` set to `result`.
pub fn write_record<W: Write>(
    out: &mut W,
    record: &Record,
    key: &str,
    result: &impl Serialize,
) -> io::Result<()> {
    let mut raw = record.raw.clone();
    raw.insert(key.to_owned(), serde_json::to_value(result)?);
    serde_json::to_writer(&mut *out, &Value::Object(raw))?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ndjson_with_lines() {
        let text = b"{\"name\":\"a\"}\n\n{\"name\":\"b\"}\n";

        let recs = parse_records(text).unwrap();

        assert_eq!(recs.len(), 2);
        assert_eq!((recs[0].line, recs[1].line), (1, 3));
    }

    #[test]
    fn reads_an_array_with_lines() {
        let text = b"[\n {\"name\":\"a\"},\n {\"name\":\"b\"}\n]\n";

        let recs = parse_records(text).unwrap();

        assert_eq!(recs.iter().map(|r| r.line).collect::<Vec<_>>(), vec![2, 3]);
    }

    #[test]
    fn empty_input_is_an_empty_fleet() {
        assert!(parse_records(b"  \n").unwrap().is_empty());
        assert!(parse_records(b"[]").unwrap().is_empty());
    }

    #[test]
    fn names_record_line_and_app_of_a_bad_record() {
        let text = b"{\"name\":\"a\"}\n{\"name\":\"b\",\"home\":\"rel\"}\n";

        let err = parse_records(text).unwrap_err();

        assert_eq!(
            err.to_string(),
            "record 2 (line 2), app \"b\", field \"home\": path \"rel\" is not absolute"
        );
    }

    #[test]
    fn rejects_duplicate_keys_at_any_depth() {
        for text in [
            &br#"{"name":"a","name":"b"}"#[..],
            br#"{"name":"a","env":{"X":"1","X":"2"}}"#,
            b"[\n{\"name\":\"a\"},\n{\"name\":\"b\",\"home\":\"/home/b\",\"home\":\"/home/c\"}]",
        ] {
            let err = parse_records(text).unwrap_err();

            assert!(err.message.contains("given twice"), "{err}");
        }
    }

    #[test]
    fn flags_likely_typos_only() {
        let recs = parse_records(br#"{"name":"a","backup":{},"x-team":1,"rip_user":{}}"#).unwrap();

        assert_eq!(unknown_keys(&recs[0].raw), vec!["backup"]);
    }

    #[test]
    fn rejects_a_non_object() {
        assert!(parse_records(b"[1]").is_err());
    }

    #[test]
    fn rejects_garbage_after_array() {
        assert!(parse_records(b"[] {}").is_err());
    }

    #[test]
    fn keeps_unknown_keys_in_output() {
        let recs = parse_records(br#"{"name":"a","x-team":{"k":[1]}}"#).unwrap();
        let mut out = Vec::new();

        write_record(
            &mut out,
            &recs[0],
            "rip_test",
            &serde_json::json!({"changed": false}),
        )
        .unwrap();

        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["x-team"]["k"][0], 1);
        assert_eq!(v["rip_test"]["changed"], false);
    }
}
