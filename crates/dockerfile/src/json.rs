//! Just enough JSON, with Go's `encoding/json` behaviour where BuildKit relies on it.
//!
//! Two questions are asked of JSON in a Dockerfile: "is this argument text a JSON array of
//! strings?" (exec form; BuildKit decodes the first value with a `json.Decoder`, so trailing
//! text after the closing `]` is ignored) and "does this file parse as a JSON object with a
//! string `syntax` key?" (syntax detection; `json.Unmarshal`, no trailing text). Go details
//! kept: only space, tab, CR and LF are whitespace; nesting deeper than 10000 is an error; a
//! number that overflows `float64` makes decoding fail; a lone UTF-16 surrogate in a `\u`
//! escape decodes to U+FFFD.
//!
//! Containers are validated with an explicit stack, so hostile nesting cannot overflow the
//! call stack.

use std::ops::Range;

/// Go's `encoding/json` maximum nesting depth.
const MAX_DEPTH: usize = 10_000;

/// The outcome of reading an exec-form argument.
#[derive(Debug, PartialEq)]
pub(crate) enum JsonArray {
    /// Not a JSON array (or not valid JSON): the caller falls back to shell form.
    NotJson,
    /// Valid JSON array with at least one element that is not a string: a hard error.
    NotStrings,
    /// The decoded strings with the byte ranges of their literals in the input.
    Strings(Vec<(String, Range<usize>)>),
}

/// Reads `text` (after leading whitespace) as the first JSON value of a stream, which must
/// be an array. Text after the array is ignored, as with Go's `json.Decoder`.
pub(crate) fn parse_array_prefix(text: &str) -> JsonArray {
    let start = text.len() - text.trim_start().len();
    let mut reader = Reader {
        bytes: text.as_bytes(),
        text,
        pos: start,
    };
    if reader.peek() != Some(b'[') {
        return JsonArray::NotJson;
    }
    reader.pos += 1;
    let mut items = Vec::new();
    let mut all_strings = true;
    reader.skip_ws();
    if reader.peek() == Some(b']') {
        return JsonArray::Strings(items);
    }
    loop {
        reader.skip_ws();
        if reader.peek() == Some(b'"') {
            let literal_start = reader.pos;
            match reader.string(true) {
                Ok(value) => items.push((value, literal_start..reader.pos)),
                Err(()) => return JsonArray::NotJson,
            }
        } else {
            all_strings = false;
            if reader.skip_value(1).is_err() {
                return JsonArray::NotJson;
            }
        }
        reader.skip_ws();
        match reader.next() {
            Some(b',') => continue,
            Some(b']') => break,
            _ => return JsonArray::NotJson,
        }
    }
    if all_strings {
        JsonArray::Strings(items)
    } else {
        JsonArray::NotStrings
    }
}

/// Reads the whole of `text` as one JSON value (surrounding whitespace allowed) and, if it
/// is an object whose member `key` is a string, returns that string (the last one if the
/// key repeats, as Go's map decoding does). `None` for invalid JSON or any other shape.
pub(crate) fn object_string_member(text: &str, key: &str) -> Option<String> {
    let mut reader = Reader {
        bytes: text.as_bytes(),
        text,
        pos: 0,
    };
    reader.skip_ws();
    let found = match reader.peek()? {
        b'{' => {
            reader.pos += 1;
            let mut found: Option<Option<String>> = None;
            reader.skip_ws();
            if reader.peek() == Some(b'}') {
                reader.pos += 1;
            } else {
                loop {
                    reader.skip_ws();
                    if reader.peek() != Some(b'"') {
                        return None;
                    }
                    let name = reader.string(true).ok()?;
                    reader.skip_ws();
                    if reader.next() != Some(b':') {
                        return None;
                    }
                    reader.skip_ws();
                    if name == key {
                        if reader.peek() == Some(b'"') {
                            found = Some(Some(reader.string(true).ok()?));
                        } else {
                            reader.skip_value(1).ok()?;
                            found = Some(None);
                        }
                    } else {
                        reader.skip_value(1).ok()?;
                    }
                    reader.skip_ws();
                    match reader.next() {
                        Some(b',') => continue,
                        Some(b'}') => break,
                        _ => return None,
                    }
                }
            }
            found.flatten()
        }
        // `null` decodes into a nil map without error; any other value is an error. Either
        // way there is no member to find, but the rest must still be checked to be valid.
        _ => {
            reader.skip_value(0).ok()?;
            None
        }
    };
    reader.skip_ws();
    if reader.pos != reader.bytes.len() {
        return None;
    }
    found
}

struct Reader<'a> {
    bytes: &'a [u8],
    text: &'a str,
    pos: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.pos += 1;
        Some(byte)
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// Skips one complete value. `depth` is the nesting depth of the container holding it.
    fn skip_value(&mut self, depth: usize) -> Result<(), ()> {
        // The stack holds the closing byte of each open container.
        let mut stack: Vec<u8> = Vec::new();
        loop {
            self.skip_ws();
            // Parse one value start.
            match self.peek().ok_or(())? {
                open @ (b'[' | b'{') => {
                    self.pos += 1;
                    if depth + stack.len() + 1 > MAX_DEPTH {
                        return Err(());
                    }
                    let close = if open == b'[' { b']' } else { b'}' };
                    self.skip_ws();
                    if self.peek() == Some(close) {
                        self.pos += 1;
                    } else {
                        stack.push(close);
                        if close == b'}' {
                            self.member_name()?;
                        }
                        continue;
                    }
                }
                b'"' => {
                    self.string(false)?;
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                b'-' | b'0'..=b'9' => self.number()?,
                _ => return Err(()),
            }
            // After a value: close containers or move to the next element.
            loop {
                let Some(&close) = stack.last() else {
                    return Ok(());
                };
                self.skip_ws();
                match self.next() {
                    Some(b',') => {
                        if close == b'}' {
                            self.skip_ws();
                            self.member_name()?;
                        }
                        break;
                    }
                    Some(byte) if byte == close => {
                        stack.pop();
                    }
                    _ => return Err(()),
                }
            }
        }
    }

    /// Reads `"name"` and the following `:` of an object member.
    fn member_name(&mut self) -> Result<(), ()> {
        if self.peek() != Some(b'"') {
            return Err(());
        }
        self.string(false)?;
        self.skip_ws();
        if self.next() != Some(b':') {
            return Err(());
        }
        Ok(())
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), ()> {
        if self.bytes[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(())
        }
    }

    /// A number; fails on bad syntax and on values that overflow `float64` (Go's decoder
    /// reports those as errors when decoding into `interface{}`).
    fn number(&mut self) -> Result<(), ()> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.next() {
            Some(b'0') => {}
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(()),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(());
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(());
            }
            self.digits();
        }
        let value: f64 = self.text[start..self.pos].parse().map_err(|_| ())?;
        if value.is_finite() { Ok(()) } else { Err(()) }
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
    }

    fn hex4(&mut self) -> Result<u32, ()> {
        let digits = self.bytes.get(self.pos..self.pos + 4).ok_or(())?;
        let mut value = 0;
        for &d in digits {
            let nibble = (d as char).to_digit(16).ok_or(())?;
            value = value * 16 + nibble;
        }
        self.pos += 4;
        Ok(value)
    }

    /// A string literal starting at `"`. Decodes it when `decode` is set (otherwise
    /// returns an empty string after validating).
    fn string(&mut self, decode: bool) -> Result<String, ()> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let run_start = self.pos;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            if decode {
                out.push_str(&self.text[run_start..self.pos]);
            }
            match self.next().ok_or(())? {
                b'"' => return Ok(out),
                b'\\' => {
                    let escaped = match self.next().ok_or(())? {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return Err(()),
                    };
                    if decode {
                        out.push(escaped);
                    }
                }
                _ => return Err(()),
            }
        }
    }

    /// The rest of a `\uXXXX` escape (after `\u`), combining a surrogate pair when one
    /// follows; a lone surrogate becomes U+FFFD.
    fn unicode_escape(&mut self) -> Result<char, ()> {
        let first = self.hex4()?;
        if (0xd800..0xdc00).contains(&first)
            && self.bytes.get(self.pos..self.pos + 2) == Some(b"\\u")
        {
            let save = self.pos;
            self.pos += 2;
            let second = self.hex4()?;
            if (0xdc00..0xe000).contains(&second) {
                let combined = 0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00);
                return Ok(char::from_u32(combined).unwrap_or('\u{fffd}'));
            }
            // Not a low surrogate: the first is lone, and the second escape is read again.
            self.pos = save;
        }
        Ok(char::from_u32(first).unwrap_or('\u{fffd}'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(text: &str) -> Option<Vec<String>> {
        match parse_array_prefix(text) {
            JsonArray::Strings(items) => Some(items.into_iter().map(|(s, _)| s).collect()),
            _ => None,
        }
    }

    #[test]
    fn arrays_of_strings_decode() {
        assert_eq!(strings("[]"), Some(vec![]));
        assert_eq!(
            strings(" [ \"a\" , \"b\" ] trailing"),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            strings(r#"["\ud83d\ude00", "\ud800x"]"#),
            Some(vec!["😀".into(), "\u{fffd}x".into()])
        );
    }

    #[test]
    fn invalid_json_is_not_json() {
        for text in [
            "['a']",
            "[\"a\"",
            "[\"a\",]",
            "[\u{b}\"a\"]",
            "[\"a\tb\"]",
            "x",
            "[01]",
        ] {
            assert_eq!(parse_array_prefix(text), JsonArray::NotJson, "{text:?}");
        }
        // Overflowing numbers make Go's decoder fail, so this is shell form, not an error.
        assert_eq!(parse_array_prefix("[\"a\", 1e999]"), JsonArray::NotJson);
    }

    #[test]
    fn non_strings_are_detected() {
        for text in ["[1]", "[\"a\", {\"b\": [1, {}]}]", "[null]", "[[]]"] {
            assert_eq!(parse_array_prefix(text), JsonArray::NotStrings, "{text:?}");
        }
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let deep = format!("[{}{}]", "[".repeat(20_000), "]".repeat(20_000));
        assert_eq!(parse_array_prefix(&deep), JsonArray::NotJson);
        let ok = format!("[{}{}]", "[".repeat(100), "]".repeat(100));
        assert_eq!(parse_array_prefix(&ok), JsonArray::NotStrings);
    }

    #[test]
    fn object_members() {
        let text = r#" {"syntax": "foo", "bar": ["abc", {"x": null}]} "#;
        assert_eq!(object_string_member(text, "syntax").as_deref(), Some("foo"));
        assert_eq!(object_string_member(r#"{"syntax": "foo""#, "syntax"), None);
        assert_eq!(
            object_string_member("{\"syntax\": \"foo\"}\n# x", "syntax"),
            None
        );
        assert_eq!(object_string_member(r#"{"syntax": 1}"#, "syntax"), None);
        assert_eq!(
            object_string_member(r#"{"syntax": "a", "syntax": "b"}"#, "syntax").as_deref(),
            Some("b")
        );
    }
}
