//! Label selectors (spec E23) and field selectors (E24), parsed from their query
//! string forms and matched against JSON objects.

use serde_json::{Map, Value};

use crate::validation::{label_value_errors, qualified_name_errors};

/// Why a selector string was rejected; the emulator answers 400 BadRequest.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum SelectorError {
    /// The selector text does not follow the grammar.
    #[error("unable to parse requirement: {0}")]
    Syntax(String),
    /// A label key is not a qualified name.
    #[error("unable to parse requirement: invalid label key {key:?}: {msg}")]
    InvalidKey {
        /// The offending key.
        key: String,
        /// Why it is invalid.
        msg: String,
    },
    /// A label value is not a valid label value.
    #[error("unable to parse requirement: invalid label value: {value:?}: {msg}")]
    InvalidValue {
        /// The offending value.
        value: String,
        /// Why it is invalid.
        msg: String,
    },
    /// A field selector names a field this kind does not support.
    #[error("field label not supported: {0}")]
    UnsupportedField(String),
}

impl SelectorError {
    /// The 400 BadRequest the apiserver answers with.
    pub fn to_api_error(&self) -> crate::status::ApiError {
        crate::status::ApiError::bad_request(&self.to_string())
    }
}

impl From<SelectorError> for crate::status::ApiError {
    fn from(e: SelectorError) -> Self {
        e.to_api_error()
    }
}

/// Operator of one label requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelOp {
    /// `k in (a,b)`, `k=v`, `k==v`.
    In(Vec<String>),
    /// `k notin (a,b)`, `k!=v`; also matches objects without `k`.
    NotIn(Vec<String>),
    /// `k`.
    Exists,
    /// `!k`.
    DoesNotExist,
    /// `k>n`.
    Gt(i64),
    /// `k<n`.
    Lt(i64),
}

/// One `key op values` term of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelRequirement {
    /// The label key.
    pub key: String,
    /// The operator and its operands.
    pub op: LabelOp,
}

impl LabelRequirement {
    fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let v = labels
            .and_then(|l| l.get(&self.key))
            .and_then(Value::as_str);
        match (&self.op, v) {
            (LabelOp::In(set), Some(v)) => set.iter().any(|s| s == v),
            (LabelOp::In(_), None) => false,
            (LabelOp::NotIn(set), Some(v)) => !set.iter().any(|s| s == v),
            (LabelOp::NotIn(_), None) => true,
            (LabelOp::Exists, v) => v.is_some(),
            (LabelOp::DoesNotExist, v) => v.is_none(),
            (LabelOp::Gt(n), Some(v)) => v.parse::<i64>().is_ok_and(|x| x > *n),
            (LabelOp::Lt(n), Some(v)) => v.parse::<i64>().is_ok_and(|x| x < *n),
            (LabelOp::Gt(_) | LabelOp::Lt(_), None) => false,
        }
    }
}

/// A parsed label selector: the AND of its requirements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// The requirements, all of which must match.
    pub requirements: Vec<LabelRequirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Bang,
    Eq,
    DoubleEq,
    NotEq,
    Gt,
    Lt,
    Comma,
    Open,
    Close,
}

fn is_special(c: char) -> bool {
    matches!(c, '!' | '=' | '>' | '<' | ',' | '(' | ')')
}

fn lex(s: &str) -> Vec<Tok> {
    let mut toks = Vec::new();
    let mut it = s.chars().peekable();
    while let Some(&c) = it.peek() {
        if c.is_whitespace() {
            it.next();
            continue;
        }
        if is_special(c) {
            it.next();
            let next_is_eq = it.peek() == Some(&'=');
            let t = match c {
                '!' if next_is_eq => {
                    it.next();
                    Tok::NotEq
                }
                '!' => Tok::Bang,
                '=' if next_is_eq => {
                    it.next();
                    Tok::DoubleEq
                }
                '=' => Tok::Eq,
                '>' => Tok::Gt,
                '<' => Tok::Lt,
                ',' => Tok::Comma,
                '(' => Tok::Open,
                _ => Tok::Close,
            };
            toks.push(t);
            continue;
        }
        let mut id = String::new();
        while let Some(&c) = it.peek() {
            if c.is_whitespace() || is_special(c) {
                break;
            }
            id.push(c);
            it.next();
        }
        toks.push(Tok::Ident(id));
    }
    toks
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn at_term_end(&self) -> bool {
        matches!(self.peek(), None | Some(Tok::Comma))
    }

    fn key(&mut self) -> Result<String, SelectorError> {
        match self.next() {
            Some(Tok::Ident(k)) => {
                if let Some(m) = qualified_name_errors(&k).into_iter().next() {
                    return Err(SelectorError::InvalidKey { key: k, msg: m });
                }
                Ok(k)
            }
            other => Err(SelectorError::Syntax(format!(
                "expected a label key, found {other:?}"
            ))),
        }
    }

    fn value(v: String) -> Result<String, SelectorError> {
        if let Some(m) = label_value_errors(&v).into_iter().next() {
            return Err(SelectorError::InvalidValue { value: v, msg: m });
        }
        Ok(v)
    }

    fn requirement(&mut self) -> Result<LabelRequirement, SelectorError> {
        if self.peek() == Some(&Tok::Bang) {
            self.next();
            let key = self.key()?;
            return Ok(LabelRequirement {
                key,
                op: LabelOp::DoesNotExist,
            });
        }
        let key = self.key()?;
        if self.at_term_end() {
            return Ok(LabelRequirement {
                key,
                op: LabelOp::Exists,
            });
        }
        let op = match self.next() {
            Some(Tok::Eq | Tok::DoubleEq) => LabelOp::In(vec![self.exact_value()?]),
            Some(Tok::NotEq) => LabelOp::NotIn(vec![self.exact_value()?]),
            Some(Tok::Gt) => LabelOp::Gt(self.int_value()?),
            Some(Tok::Lt) => LabelOp::Lt(self.int_value()?),
            Some(Tok::Ident(w)) if w == "in" => LabelOp::In(self.value_set()?),
            Some(Tok::Ident(w)) if w == "notin" => LabelOp::NotIn(self.value_set()?),
            other => {
                return Err(SelectorError::Syntax(format!(
                    "found {other:?}, expected: in, notin, =, ==, !=, gt, lt"
                )));
            }
        };
        Ok(LabelRequirement { key, op })
    }

    fn exact_value(&mut self) -> Result<String, SelectorError> {
        if self.at_term_end() {
            return Ok(String::new());
        }
        match self.next() {
            Some(Tok::Ident(v)) => Self::value(v),
            other => Err(SelectorError::Syntax(format!(
                "found {other:?}, expected a value"
            ))),
        }
    }

    fn int_value(&mut self) -> Result<i64, SelectorError> {
        match self.next() {
            Some(Tok::Ident(v)) => v.parse::<i64>().map_err(|_| {
                SelectorError::Syntax(format!(
                    "for 'Gt', 'Lt' operators, the value must be an integer, found {v:?}"
                ))
            }),
            other => Err(SelectorError::Syntax(format!(
                "found {other:?}, expected an integer"
            ))),
        }
    }

    fn value_set(&mut self) -> Result<Vec<String>, SelectorError> {
        if self.next() != Some(Tok::Open) {
            return Err(SelectorError::Syntax("expected '(' after in/notin".into()));
        }
        let mut vals = Vec::new();
        let mut expect_value = true;
        loop {
            match self.next() {
                Some(Tok::Close) => {
                    if expect_value && !vals.is_empty() {
                        vals.push(String::new());
                    }
                    break;
                }
                Some(Tok::Comma) => {
                    if expect_value {
                        vals.push(String::new());
                    }
                    expect_value = true;
                }
                Some(Tok::Ident(v)) if expect_value => {
                    vals.push(Self::value(v)?);
                    expect_value = false;
                }
                other => {
                    return Err(SelectorError::Syntax(format!(
                        "found {other:?}, expected a value, ',' or ')'"
                    )));
                }
            }
        }
        if vals.is_empty() {
            return Err(SelectorError::Syntax(
                "for 'in', 'notin' operators, values set can't be empty".into(),
            ));
        }
        Ok(vals)
    }
}

impl LabelSelector {
    /// Parses every E23 form; whitespace is tolerated and `""` selects everything.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut p = Parser {
            toks: lex(s),
            pos: 0,
        };
        let mut requirements = Vec::new();
        if p.toks.is_empty() {
            return Ok(Self { requirements });
        }
        loop {
            requirements.push(p.requirement()?);
            match p.next() {
                None => break,
                Some(Tok::Comma) => {
                    if p.peek().is_none() {
                        return Err(SelectorError::Syntax("trailing ','".into()));
                    }
                }
                Some(t) => {
                    return Err(SelectorError::Syntax(format!(
                        "found {t:?}, expected: ',' or end"
                    )));
                }
            }
        }
        Ok(Self { requirements })
    }

    /// Whether an object with these `metadata.labels` is selected.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether the object's `metadata.labels` are selected.
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.matches(
            obj.get("metadata")
                .and_then(|m| m.get("labels"))
                .and_then(Value::as_object),
        )
    }

    /// True when the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

/// One `field=value` or `field!=value` term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    /// Dotted field path such as `metadata.name`.
    pub field: String,
    /// The value to compare with, unescaped.
    pub value: String,
    /// True for `!=`.
    pub negated: bool,
}

/// A parsed field selector: the AND of its terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    /// The terms, all of which must hold.
    pub requirements: Vec<FieldRequirement>,
}

fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            cur.push('\\');
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    if escaped {
        cur.push('\\');
    }
    parts.push(cur);
    parts
}

fn unescape(s: &str) -> Result<String, SelectorError> {
    let mut out = String::new();
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                Some(e) => {
                    return Err(SelectorError::Syntax(format!(
                        "invalid escape sequence \\{e}"
                    )));
                }
                None => return Err(SelectorError::Syntax("trailing backslash".into())),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// Splits a term at its first unescaped operator (`!=`, `==` or `=`).
fn split_term(term: &str) -> Option<(&str, &str, &str)> {
    let b = term.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            i += 2;
            continue;
        }
        for op in ["!=", "==", "="] {
            if term[i..].starts_with(op) {
                return Some((&term[..i], op, &term[i + op.len()..]));
            }
        }
        i += 1;
    }
    None
}

impl FieldSelector {
    /// Parses `f=v`, `f==v` and `f!=v` terms joined by commas (AND). Backslash escapes
    /// `\,`, `\=` and `\\` in values. Fields outside `supported_fields` are rejected.
    pub fn parse(s: &str, supported_fields: &[&str]) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        if s.trim().is_empty() {
            return Ok(Self { requirements });
        }
        for term in split_unescaped(s, ',') {
            if term.trim().is_empty() {
                continue;
            }
            let Some((field, op, value)) = split_term(&term) else {
                return Err(SelectorError::Syntax(format!(
                    "invalid selector: '{term}'; can't understand '{term}'"
                )));
            };
            let field = field.trim().to_string();
            if !supported_fields.contains(&field.as_str()) {
                return Err(SelectorError::UnsupportedField(field));
            }
            requirements.push(FieldRequirement {
                field,
                value: unescape(value.trim())?,
                negated: op == "!=",
            });
        }
        Ok(Self { requirements })
    }

    /// Whether the object satisfies every term. A missing field reads as `""`.
    pub fn matches(&self, obj: &Value) -> bool {
        self.matches_fn(|f| field_value(obj, f))
    }

    /// Like [`FieldSelector::matches`] with a caller-supplied field reader, for fields
    /// whose absent value is not `""` (Node `spec.unschedulable` reads `"false"`).
    pub fn matches_fn(&self, get: impl Fn(&str) -> String) -> bool {
        self.requirements
            .iter()
            .all(|r| (get(&r.field) == r.value) != r.negated)
    }

    /// True when the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

/// The string form of the value at a dotted path, as field selectors see it.
pub fn field_value(obj: &Value, path: &str) -> String {
    let mut cur = obj;
    for seg in path.split('.') {
        match cur.get(seg) {
            Some(v) => cur = v,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn label_selector_table() {
        let web = labels(json!({"app": "web", "tier": "front", "n": "5"}));
        let db = labels(json!({"app": "db", "n": "x"}));
        let none = labels(json!({}));
        // (selector, matches web, matches db, matches none)
        let rows: &[(&str, bool, bool, bool)] = &[
            ("", true, true, true),
            ("app=web", true, false, false),
            ("app==web", true, false, false),
            ("app = web", true, false, false),
            ("app!=web", false, true, true),
            ("app in (web,db)", true, true, false),
            ("app in ( web , other )", true, false, false),
            ("app notin (web)", false, true, true),
            ("app", true, true, false),
            ("!app", false, false, true),
            ("! app", false, false, true),
            ("tier", true, false, false),
            ("app=web,tier=front", true, false, false),
            ("app=web, tier=back", false, false, false),
            ("n>4", true, false, false),
            ("n>5", false, false, false),
            ("n<6", true, false, false),
            ("n<-1", false, false, false),
            ("app=", false, false, false),
            ("ferrolb.io/x notin (a,b)", true, true, true),
            ("app in (in,notin)", false, false, false),
        ];
        for (s, w, d, n) in rows {
            let sel = LabelSelector::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(sel.matches(Some(&web)), *w, "{s} web");
            assert_eq!(sel.matches(Some(&db)), *d, "{s} db");
            assert_eq!(sel.matches(Some(&none)), *n, "{s} none");
            assert_eq!(sel.matches(None), *n, "{s} no labels");
        }
        assert!(LabelSelector::parse(" ").unwrap().is_empty());
        assert!(!LabelSelector::parse("a").unwrap().is_empty());
    }

    #[test]
    fn empty_value_matches_empty_label() {
        let sel = LabelSelector::parse("app=").unwrap();
        assert!(sel.matches(Some(&labels(json!({"app": ""})))));
        let sel = LabelSelector::parse("app in (a,)").unwrap();
        assert!(sel.matches(Some(&labels(json!({"app": ""})))));
    }

    #[test]
    fn malformed_label_selectors() {
        for s in [
            "app=web=x",
            "app in web",
            "app in ()",
            "app in (a",
            "app>x",
            "a b",
            "=x",
            "app=fd00::1",
            "bad key=1",
            "-a=1",
            "app=web,",
            ",",
            "!",
            "a!",
            "app notin",
            "x/y/z",
        ] {
            assert!(LabelSelector::parse(s).is_err(), "{s:?} should fail");
        }
    }

    #[test]
    fn matches_object_reads_metadata_labels() {
        let sel = LabelSelector::parse("app=web").unwrap();
        assert!(sel.matches_object(&json!({"metadata": {"labels": {"app": "web"}}})));
        assert!(!sel.matches_object(&json!({"metadata": {}})));
    }

    #[test]
    fn field_selector_table() {
        let supported = [
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.unschedulable",
        ];
        let obj = json!({"metadata": {"name": "node-a", "namespace": "default"},
                         "spec": {"unschedulable": true}});
        let rows: &[(&str, bool)] = &[
            ("", true),
            ("metadata.name=node-a", true),
            ("metadata.name==node-a", true),
            ("metadata.name!=node-a", false),
            ("metadata.name=node-b", false),
            ("metadata.name=node-a,metadata.namespace=default", true),
            ("metadata.name=node-a,metadata.namespace!=default", false),
            ("spec.nodeName=", true),
            ("spec.nodeName!=", false),
            ("spec.unschedulable=true", true),
        ];
        for (s, m) in rows {
            let sel = FieldSelector::parse(s, &supported).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(sel.matches(&obj), *m, "{s}");
        }
    }

    #[test]
    fn field_selector_errors_and_escapes() {
        let e = FieldSelector::parse("spec.x=1", &["metadata.name"]).unwrap_err();
        assert_eq!(e, SelectorError::UnsupportedField("spec.x".into()));
        assert_eq!(e.to_string(), "field label not supported: spec.x");
        let api: crate::status::ApiError = e.into();
        assert_eq!((api.code, api.reason.as_str()), (400, "BadRequest"));
        assert!(FieldSelector::parse("metadata.name", &["metadata.name"]).is_err());
        assert!(FieldSelector::parse("metadata.name=a\\x", &["metadata.name"]).is_err());
        let sel =
            FieldSelector::parse("spec.unschedulable=false", &["spec.unschedulable"]).unwrap();
        let node = json!({"spec": {}});
        assert!(!sel.matches(&node));
        let with_default = |f: &str| match field_value(&node, f) {
            v if v.is_empty() && f == "spec.unschedulable" => "false".to_string(),
            v => v,
        };
        assert!(sel.matches_fn(with_default));
        let sel = FieldSelector::parse("metadata.name=a\\,b", &["metadata.name"]).unwrap();
        assert_eq!(sel.requirements.len(), 1);
        assert!(sel.matches(&json!({"metadata": {"name": "a,b"}})));
    }
}
