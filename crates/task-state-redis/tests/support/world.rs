//! Records the way the world writes them, for the property suite: any member order, unknown
//! members of every JSON type, RFC 8259 white space wherever it is allowed, every escape
//! (lone surrogates too, which the model keeps inside values it holds as text and refuses in
//! strings it decodes), numbers of every form (`1e400`, `-0`, `1E+2`, integers past 2^64),
//! values nested thousands of levels deep, optional members missing or null (the timestamps
//! too), `jobs` and `active_jobs` alone or together, owner names that cannot be parts of keys
//! (empty, with `:`), and now and then a record that no decoder should accept.
#![allow(dead_code, unreachable_pub)]

/// A small deterministic generator (xorshift64*), seeded by proptest.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability 1/n.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// How a record is laid out: compact (as the Python package writes) or with white space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Compact,
    Spaced,
}

/// A JSON value, rendered as text by [`render`].
#[derive(Debug, Clone)]
pub enum Json {
    Literal(&'static str),
    Number(String),
    /// The string a literal stands for; rendered with random escapes.
    Str(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
    /// Text put in as it is (for the broken records).
    Raw(String),
}

const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "-0.0",
    "7",
    "-12",
    "3.25",
    "1.50",
    "-0.5",
    "0.30000000000000004",
    "1e5",
    "1E+5",
    "1E+2",
    "0e0",
    "2.5e-3",
    "-1.0E-300",
    "9007199254740993",
    "18446744073709551616",
    "12345678901234567890",
    "123456789012345678901234567890",
    "-123456789012345678901234567890",
    "1e400",
    "-1E400",
    "1e-400",
    "0.0000000000000000000000000000000000000001",
];

/// Numbers and words that are not JSON numbers: every decoder must refuse them.
const BAD_NUMBERS: &[&str] = &[
    "012",
    "1.",
    ".5",
    "+1",
    "1e",
    "1e+",
    "-",
    "0x10",
    "NaN",
    "Infinity",
    "-Infinity",
    "1_000",
];

const WHITE: &[&str] = &[" ", "\t", "\n", "\r\n", "  ", " \n\t"];

/// Characters that make strings interesting: quotes, backslashes, slashes, controls,
/// Korean, an astral emoji, brackets and commas that look like structure.
const PIECES: &[&str] = &[
    "a",
    "Z",
    " ",
    "\"",
    "\\",
    "/",
    "\n",
    "\t",
    "\r",
    "\u{1}",
    "\u{7f}",
    "\u{80}",
    "é",
    "한국어",
    "😀",
    "]",
    "[",
    "}",
    "{",
    ",",
    ":",
    "\"logs\":[",
    "null",
    "0",
];

pub fn text(rng: &mut Rng, max: usize) -> String {
    let n = rng.below(max + 1);
    (0..n).map(|_| rng.pick(PIECES)).collect()
}

/// Stands for a surrogate escape that is not in a pair: [`literal`] writes it as `\ud800`,
/// `\uDFFF` and the like. (A Rust string cannot hold a surrogate; this character is never
/// generated otherwise.)
pub const LONE: char = '\u{10FFFF}';

/// How [`literal`] writes [`LONE`]: surrogate escapes without their other half.
pub const LONE_ESCAPES: &[&str] = &[
    "\\ud800",
    "\\uDBFF",
    "\\udc00",
    "\\uDFFF",
    "\\ud800\\ud800",
    "\\udc00\\ud800",
    "\\ud83d\\u0041",
];

/// [`text`] for a string the model keeps as text (inside parameters and unknown members):
/// now and then with a lone surrogate escape.
pub fn raw_text(rng: &mut Rng, max: usize) -> String {
    let mut s = text(rng, max);
    if rng.one_in(8) {
        let at = (0..=s.len())
            .filter(|&i| s.is_char_boundary(i))
            .nth(rng.below(s.chars().count() + 1))
            .unwrap_or(0);
        s.insert(at, LONE);
    }
    s
}

/// A string with a lone surrogate escape, where the model decodes strings.
pub fn lone_text(rng: &mut Rng) -> String {
    let mut s = text(rng, 3);
    s.push(LONE);
    s.push_str(&text(rng, 2));
    s
}

/// A JSON string literal for `s`, each character plain or escaped at random.
pub fn literal(rng: &mut Rng, s: &str, style: Style) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if c == LONE {
            out.push_str(rng.pick(LONE_ESCAPES));
            continue;
        }
        let must = c == '"' || c == '\\' || (c as u32) < 0x20;
        let escape = must || (style == Style::Spaced && rng.one_in(6)) || rng.one_in(20);
        if !escape {
            out.push(c);
            continue;
        }
        let short = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '/' => Some("\\/"),
            '\n' => Some("\\n"),
            '\t' => Some("\\t"),
            '\r' => Some("\\r"),
            '\u{8}' => Some("\\b"),
            '\u{c}' => Some("\\f"),
            _ => None,
        };
        match short {
            Some(esc) if rng.below(3) > 0 => out.push_str(esc),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    if rng.one_in(2) {
                        out.push_str(&format!("\\u{unit:04x}"));
                    } else {
                        out.push_str(&format!("\\u{unit:04X}"));
                    }
                }
            }
        }
    }
    out.push('"');
    out
}

/// Any JSON value, nested at most `depth` more levels (now and then far deeper, as text: see
/// [`deep`]). Strings and keys may hold lone surrogates: the model keeps such values as text.
pub fn value(rng: &mut Rng, depth: usize) -> Json {
    if rng.one_in(40) {
        return Json::Raw(deep(rng));
    }
    let kinds = if depth == 0 { 4 } else { 6 };
    match rng.below(kinds) {
        0 => Json::Literal(rng.pick(&["true", "false", "null"])),
        1 => Json::Number((rng.pick(NUMBERS)).to_owned()),
        2 | 3 => Json::Str(raw_text(rng, 6)),
        4 => Json::Array((0..rng.below(4)).map(|_| value(rng, depth - 1)).collect()),
        _ => Json::Object(
            (0..rng.below(4))
                .map(|_| (raw_text(rng, 4), value(rng, depth - 1)))
                .collect(),
        ),
    }
}

/// A value nested 100 to 3,000 levels deep (serde_json's limit for values it decodes is 128;
/// the model keeps these as text, at any depth): arrays and objects, white space, a number or
/// a string at the bottom. Built as text, without recursion.
pub fn deep(rng: &mut Rng) -> String {
    let depth = if rng.one_in(4) {
        1000 + rng.below(2001)
    } else {
        100 + rng.below(200)
    };
    let mut out = String::new();
    let mut closers = Vec::with_capacity(depth);
    for _ in 0..depth {
        if rng.one_in(3) {
            out.push_str(r#"{"k":"#);
            closers.push('}');
        } else {
            out.push('[');
            closers.push(']');
        }
        if rng.one_in(8) {
            out.push(' ');
        }
    }
    out.push_str(rng.pick(&["1e400", "-0", "\"\\uDFFF\"", "null", "[]", "{}"]));
    while let Some(closer) = closers.pop() {
        if closer == ']' && rng.one_in(8) {
            out.push_str(",0");
        }
        out.push(closer);
    }
    out
}

fn ws(rng: &mut Rng, style: Style, out: &mut String) {
    if style == Style::Spaced && rng.below(3) > 0 {
        out.push_str(rng.pick(WHITE));
    }
}

pub fn render(rng: &mut Rng, json: &Json, style: Style, out: &mut String) {
    match json {
        Json::Literal(l) => out.push_str(l),
        Json::Number(n) | Json::Raw(n) => out.push_str(n),
        Json::Str(s) => out.push_str(&literal(rng, s, style)),
        Json::Array(items) => {
            out.push('[');
            ws(rng, style, out);
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    ws(rng, style, out);
                    out.push(',');
                    ws(rng, style, out);
                }
                render(rng, item, style, out);
            }
            ws(rng, style, out);
            out.push(']');
        }
        Json::Object(members) => render_members(rng, members, style, out),
    }
}

pub fn render_members(rng: &mut Rng, members: &[(String, Json)], style: Style, out: &mut String) {
    out.push('{');
    ws(rng, style, out);
    for (i, (key, value)) in members.iter().enumerate() {
        if i > 0 {
            ws(rng, style, out);
            out.push(',');
            ws(rng, style, out);
        }
        out.push_str(&literal(rng, key, style));
        ws(rng, style, out);
        out.push(':');
        ws(rng, style, out);
        render(rng, value, style, out);
    }
    ws(rng, style, out);
    out.push('}');
}

fn strings(rng: &mut Rng, max: usize, piece: usize) -> Json {
    Json::Array(
        (0..rng.below(max + 1))
            .map(|_| Json::Str(text(rng, piece)))
            .collect(),
    )
}

const TIMES: &[&str] = &[
    "2025-11-17T10:00:16.515926+09:00",
    "2025-11-17T10:00:16+09:00",
    "2025-11-17 01:00:16Z",
    "2024-02-29t23:59:59.1-05",
    "2025-03-09T01:59:59.999999999-05:00:00.5",
    "2025-11-17T10:00:16",
];
const BAD_TIMES: &[&str] = &[
    "soon",
    "2025-02-30T00:00:00+00:00",
    "2025-11-17T10:00:60+00:00",
    "2025-11-17T10:00",
];
const STATUSES: &[&str] = &[
    "pending",
    "dispatching",
    "running",
    "completed",
    "failed",
    "cancel_requested",
    "cancelled",
];

/// Members of a record of task `id`, owned by `service` and `user`. With `wild`, a member now
/// and then breaks one of the model's rules.
pub fn members(
    rng: &mut Rng,
    id: &str,
    service: &str,
    user: &str,
    wild: bool,
) -> Vec<(String, Json)> {
    let mut m: Vec<(String, Json)> = Vec::new();
    let bad = |rng: &mut Rng| wild && rng.one_in(30);
    // A lone surrogate escape in a string the model decodes: rarer, as there are many places.
    let lone = |rng: &mut Rng| wild && rng.one_in(80);
    m.push(("task_id".into(), Json::Str(id.into())));
    // Owner names that cannot be parts of keys: empty, or with ':' (`a:user:b` would name
    // user b's index of service a).
    let service = if bad(rng) {
        rng.pick(&["", "a:user:b"]).to_owned()
    } else {
        service.to_owned()
    };
    m.push(("service".into(), Json::Str(service)));
    let user = if bad(rng) {
        if rng.one_in(2) {
            format!("{user}:x")
        } else {
            String::new()
        }
    } else {
        user.to_owned()
    };
    m.push(("user_id".into(), Json::Str(user)));
    let status = if bad(rng) {
        "exploded"
    } else {
        rng.pick(STATUSES)
    };
    m.push(("status".into(), Json::Str(status.into())));
    match rng.below(4) {
        0 => {}
        1 => m.push(("parameters".into(), Json::Literal("null"))),
        _ => m.push((
            "parameters".into(),
            if bad(rng) {
                Json::Array(vec![])
            } else {
                // The keys of parameters are decoded: a lone surrogate there is refused.
                Json::Object(
                    (0..rng.below(4))
                        .map(|_| {
                            let key = if lone(rng) {
                                lone_text(rng)
                            } else {
                                text(rng, 4)
                            };
                            (key, value(rng, 3))
                        })
                        .collect(),
                )
            },
        )),
    }
    let jobs = |rng: &mut Rng| {
        if bad(rng) {
            Json::Array(vec![Json::Number("1".into())])
        } else if lone(rng) {
            Json::Array(vec![Json::Str(lone_text(rng))])
        } else if rng.one_in(4) {
            Json::Literal("null")
        } else {
            strings(rng, 3, 5)
        }
    };
    match rng.below(5) {
        0 => {}
        1 => m.push(("active_jobs".into(), jobs(rng))),
        2 => {
            m.push(("jobs".into(), jobs(rng)));
            m.push(("active_jobs".into(), jobs(rng)));
        }
        _ => m.push(("jobs".into(), jobs(rng))),
    }
    let time = |rng: &mut Rng| {
        if bad(rng) {
            Json::Str((rng.pick(BAD_TIMES)).into())
        } else {
            Json::Str((rng.pick(TIMES)).into())
        }
    };
    // A timestamp missing or null reads as now in the configured zone.
    for name in ["created_at", "updated_at"] {
        match rng.below(8) {
            0 => {}
            1 => m.push((name.into(), Json::Literal("null"))),
            _ => m.push((name.into(), time(rng))),
        }
    }
    match rng.below(5) {
        0 => {}
        1 => m.push(("logs".into(), Json::Literal("null"))),
        _ if bad(rng) => m.push((
            "logs".into(),
            Json::Array(vec![Json::Str("a".into()), Json::Literal("true")]),
        )),
        _ if lone(rng) => m.push((
            "logs".into(),
            Json::Array(vec![Json::Str("a".into()), Json::Str(lone_text(rng))]),
        )),
        _ => m.push(("logs".into(), strings(rng, 4, 8))),
    }
    match rng.below(5) {
        0 => {}
        1 => m.push(("result".into(), Json::Literal("null"))),
        _ if bad(rng) => m.push(("result".into(), Json::Array(vec![]))),
        _ => {
            let mut fields = Vec::new();
            for name in ["pod_status", "launcher_output"] {
                match rng.below(3) {
                    0 => {}
                    1 => fields.push((name.to_owned(), Json::Literal("null"))),
                    _ if lone(rng) => fields.push((name.to_owned(), Json::Str(lone_text(rng)))),
                    _ => fields.push((name.to_owned(), Json::Str(text(rng, 6)))),
                }
            }
            // Other members, which the model keeps as text; their keys it decodes.
            for _ in 0..rng.below(3) {
                let key = if lone(rng) {
                    lone_text(rng)
                } else {
                    rng.pick(&["exit_code", "node", "pod_status_v2", "é"])
                        .to_owned()
                };
                fields.push((key, value(rng, 2)));
            }
            shuffle(rng, &mut fields);
            m.push(("result".into(), Json::Object(fields)));
        }
    }
    match rng.below(4) {
        0 => {}
        1 => m.push(("priority".into(), Json::Literal("null"))),
        _ => {
            let p = if bad(rng) {
                "urgent"
            } else {
                rng.pick(&["low", "high"])
            };
            m.push(("priority".into(), Json::Str(p.into())));
        }
    }
    for _ in 0..rng.below(4) {
        let name = rng.pick(&["tags", "owner_team", "x1", "logs_v2", "é", "retries"]);
        m.push(((*name).to_owned(), value(rng, 3)));
    }
    if lone(rng) {
        // An unknown member whose key does not decode.
        m.push((lone_text(rng), value(rng, 1)));
    }
    if rng.one_in(10) {
        // A known member twice: the model reads the last one.
        let status = rng.pick(STATUSES);
        m.push(("status".into(), Json::Str((*status).into())));
    }
    shuffle(rng, &mut m);
    m
}

pub fn shuffle<T>(rng: &mut Rng, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        items.swap(i, rng.below(i + 1));
    }
}

/// A record's text. Now and then (with `wild`) it is broken in a way a JSON decoder must
/// refuse: cut short, a raw control character, a malformed escape or a number outside JSON's
/// grammar in a value the model keeps as text, trailing text, or brackets that do not match
/// deep down. (A lone surrogate or deep nesting in such a value is fine: see [`value`].)
pub fn record(rng: &mut Rng, id: &str, service: &str, user: &str, wild: bool) -> String {
    let style = if rng.one_in(3) {
        Style::Compact
    } else {
        Style::Spaced
    };
    let mut members = members(rng, id, service, user, wild);
    if wild && rng.one_in(15) {
        let broken = match rng.below(6) {
            0 => Json::Raw("\"a\u{2}b\"".into()),
            1 => Json::Raw("\"\\u12G4\"".into()),
            2 => Json::Raw(rng.pick(BAD_NUMBERS).into()),
            3 => Json::Raw("\"\\x\"".into()),
            4 => Json::Raw(format!("{}{}", "[".repeat(3000), "]".repeat(2999))),
            _ => {
                let mut text = deep(rng);
                // A closing bracket swapped for the other kind, somewhere deep down.
                if let Some(at) = text.rfind([']', '}']) {
                    let other = if text.as_bytes()[at] == b']' {
                        "}"
                    } else {
                        "]"
                    };
                    text.replace_range(at..=at, other);
                }
                Json::Raw(text)
            }
        };
        // Where the model keeps it as text: an unknown member, a parameter, a result member.
        match rng.below(3) {
            0 => members.push(("oops".into(), broken)),
            1 => members.push((
                "parameters".into(),
                Json::Object(vec![("p".into(), broken)]),
            )),
            _ => members.push(("result".into(), Json::Object(vec![("r".into(), broken)]))),
        }
    }
    let mut out = String::new();
    if style == Style::Spaced && rng.one_in(2) {
        out.push_str(rng.pick(WHITE));
    }
    render_members(rng, &members, style, &mut out);
    if wild && rng.one_in(30) {
        match rng.below(3) {
            0 => {
                let cut = 1 + rng.below(out.len() - 1);
                let cut = (0..=cut)
                    .rev()
                    .find(|&i| out.is_char_boundary(i))
                    .unwrap_or(0);
                out.truncate(cut);
            }
            1 => out.push_str(" x"),
            _ => out.push_str("{}"),
        }
    } else if style == Style::Spaced && rng.one_in(2) {
        out.push_str(rng.pick(WHITE));
    }
    out
}
