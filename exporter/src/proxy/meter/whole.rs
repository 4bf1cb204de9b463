//! A fast reading of a whole (non-streaming) JSON response: one pass over the bytes that
//! checks the document and takes only what the meter reads (usage, the finish reason, whether
//! it carries content), building nothing it skips.
//!
//! It answers only when it is sure to answer as the general reading ([`super::Whole`], serde)
//! would: a document that is not plainly a valid object of the usual shape (not UTF-8, a key
//! it reads given twice or with escapes, a count that is not an unsigned integer, a number with
//! an exponent, a `\u` escape of a surrogate, deep nesting, anything invalid) gives `None`, and
//! the meter reads it the general way. A test and the `proxy_metering` fuzz target check that
//! every answer equals the general reading's.

use super::{Api, FinishReason};

/// What the meter takes from a whole response.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct WholeRead {
    pub finish: Option<FinishReason>,
    pub prompt: Option<u64>,
    pub generated: Option<u64>,
    pub has_content: bool,
}

/// Not sure: read it the general way.
struct Unsure;

type R<T> = Result<T, Unsure>;

/// Nesting deeper than this is left to the general reading (serde_json stops at 128).
const MAX_DEPTH: u32 = 64;

/// Digits of a number past which it is left to the general reading (a float out of range).
const MAX_DIGITS: usize = 300;

/// A value's shape, as far as the meter asks: a non-empty string, array or object.
#[derive(Clone, Copy, Default, PartialEq)]
enum Shape {
    #[default]
    Other,
    NonEmpty,
}

/// Reads `json` as a response of `api`; `None` when not sure (see the module documentation).
pub(super) fn read(api: Api, json: &[u8]) -> Option<WholeRead> {
    std::str::from_utf8(json).ok()?;
    let mut c = Cursor { b: json, i: 0 };
    c.top(api).ok()
}

/// How many bytes from the start of `b` may stand in a string as they are: up to the first
/// quote, backslash or control character. Eight bytes at a time.
#[inline(always)]
fn plain_run(b: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let mut n = 0;
    while let Some(word) = b.get(n..n + 8) {
        let w = u64::from_le_bytes(word.try_into().unwrap_or_default());
        // A byte below 0x20, or equal to '"' or '\\', sets its high bit.
        let special = (w.wrapping_sub(ONES * 0x20) & !w & HIGH)
            | zero(w ^ (ONES * u64::from(b'"')))
            | zero(w ^ (ONES * u64::from(b'\\')));
        if special != 0 {
            return n + (special.trailing_zeros() / 8) as usize;
        }
        n += 8;
    }
    n + b[n..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .unwrap_or(b.len() - n)
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

/// The top-level fields read, each at most once.
#[derive(Default)]
struct Top {
    seen: u16,
    prompt: Option<u64>,
    completion: Option<u64>,
    prompt_eval_count: Option<u64>,
    eval_count: Option<u64>,
    choices: usize,
    choice_reason: Option<FinishReason>,
    content: Shape,
    output: Shape,
    message_content: Shape,
    response: Shape,
    status: Option<FinishReason>,
    stop_reason: Option<FinishReason>,
    done_reason: Option<FinishReason>,
}

impl Top {
    fn once(&mut self, bit: u16) -> R<()> {
        if self.seen & bit != 0 {
            return Err(Unsure);
        }
        self.seen |= bit;
        Ok(())
    }
}

impl<'a> Cursor<'a> {
    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline(always)]
    fn ws(&mut self) {
        // Compact documents have none: one look.
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    #[inline(always)]
    fn eat(&mut self, want: u8) -> R<()> {
        self.ws();
        if self.peek() == Some(want) {
            self.i += 1;
            Ok(())
        } else {
            Err(Unsure)
        }
    }

    /// A string (the cursor on its opening quote): its raw contents and whether it has escapes.
    #[inline(always)]
    fn string(&mut self) -> R<(&'a [u8], bool)> {
        self.eat(b'"')?;
        let b = self.b;
        let start = self.i;
        let mut i = start;
        let mut escaped = false;
        loop {
            i += plain_run(&b[i..]);
            let c = *b.get(i).ok_or(Unsure)?;
            i += 1;
            match c {
                b'"' => {
                    self.i = i;
                    return Ok((&b[start..i - 1], escaped));
                }
                b'\\' => {
                    escaped = true;
                    let e = *b.get(i).ok_or(Unsure)?;
                    i += 1;
                    match e {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        b'u' => {
                            let hex = b.get(i..i + 4).ok_or(Unsure)?;
                            let code = std::str::from_utf8(hex)
                                .ok()
                                .filter(|h| h.bytes().all(|d| d.is_ascii_hexdigit()))
                                .and_then(|h| u16::from_str_radix(h, 16).ok())
                                .ok_or(Unsure)?;
                            if (0xD800..=0xDFFF).contains(&code) {
                                return Err(Unsure);
                            }
                            i += 4;
                        }
                        _ => return Err(Unsure),
                    }
                }
                // A control character.
                _ => return Err(Unsure),
            }
        }
    }

    /// A key without escapes, and its colon.
    #[inline(always)]
    fn key(&mut self) -> R<&'a [u8]> {
        let (k, escaped) = self.string()?;
        if escaped {
            return Err(Unsure);
        }
        self.eat(b':')?;
        Ok(k)
    }

    /// A string value, unescaped, as a finish reason (`Some(None)` when empty); `None` for any
    /// other value (checked and skipped).
    fn reason(&mut self, depth: u32) -> R<Option<Option<FinishReason>>> {
        self.ws();
        if self.peek() != Some(b'"') {
            self.value(depth)?;
            return Ok(None);
        }
        let (raw, escaped) = self.string()?;
        if !escaped {
            let s = std::str::from_utf8(raw).map_err(|_| Unsure)?;
            return Ok(Some(FinishReason::new(s)));
        }
        let mut quoted = Vec::with_capacity(raw.len() + 2);
        quoted.push(b'"');
        quoted.extend_from_slice(raw);
        quoted.push(b'"');
        let s: String = serde_json::from_slice(&quoted).map_err(|_| Unsure)?;
        Ok(Some(FinishReason::new(&s)))
    }

    /// An unsigned count or `null`; anything else is left to the general reading.
    fn count(&mut self) -> R<Option<u64>> {
        self.ws();
        if self.peek() == Some(b'n') {
            self.literal(b"null")?;
            return Ok(None);
        }
        let start = self.i;
        // Digits taken as they come; past u64 (or a leading zero, a fraction, an exponent) is
        // left to the general reading.
        let mut n: u64 = 0;
        while let Some(&d @ b'0'..=b'9') = self.b.get(self.i) {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(d - b'0')))
                .ok_or(Unsure)?;
            self.i += 1;
        }
        let digits = self.i - start;
        if digits == 0 || (digits > 1 && self.b[start] == b'0') {
            return Err(Unsure);
        }
        if let Some(b'.' | b'e' | b'E') = self.peek() {
            return Err(Unsure);
        }
        Ok(Some(n))
    }

    #[inline(always)]
    fn literal(&mut self, word: &[u8]) -> R<()> {
        if self.b.get(self.i..self.i + word.len()) == Some(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(Unsure)
        }
    }

    fn number(&mut self) -> R<()> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        let int = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        let digits = self.i - int;
        if digits == 0 || (digits > 1 && self.b[int] == b'0') {
            return Err(Unsure);
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            let frac = self.i;
            while let Some(b'0'..=b'9') = self.peek() {
                self.i += 1;
            }
            if self.i == frac {
                return Err(Unsure);
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            return Err(Unsure);
        }
        if self.i - start > MAX_DIGITS {
            return Err(Unsure);
        }
        Ok(())
    }

    /// Any value, checked and skipped; its shape.
    fn value(&mut self, depth: u32) -> R<Shape> {
        self.ws();
        match self.peek().ok_or(Unsure)? {
            b'"' => {
                let (s, _) = self.string()?;
                Ok(if s.is_empty() {
                    Shape::Other
                } else {
                    Shape::NonEmpty
                })
            }
            b'{' => self.object(depth + 1, |c, _, depth| c.value(depth).map(drop)),
            b'[' => self.array(depth + 1, |c, depth| c.value(depth).map(drop)),
            b't' => self.literal(b"true").map(|()| Shape::Other),
            b'f' => self.literal(b"false").map(|()| Shape::Other),
            b'n' => self.literal(b"null").map(|()| Shape::Other),
            b'-' | b'0'..=b'9' => self.number().map(|()| Shape::Other),
            _ => Err(Unsure),
        }
    }

    /// An object (the cursor on `{`, `depth` its own), each member's value read by `member`
    /// (given the key, unescaped keys only); its shape.
    fn object(
        &mut self,
        depth: u32,
        mut member: impl FnMut(&mut Self, &'a [u8], u32) -> R<()>,
    ) -> R<Shape> {
        if depth > MAX_DEPTH {
            return Err(Unsure);
        }
        self.eat(b'{')?;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(Shape::Other);
        }
        loop {
            let k = self.key()?;
            member(self, k, depth)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(Shape::NonEmpty);
                }
                _ => return Err(Unsure),
            }
            self.ws();
        }
    }

    /// An array (the cursor on `[`), each element read by `element`; its shape.
    fn array(&mut self, depth: u32, mut element: impl FnMut(&mut Self, u32) -> R<()>) -> R<Shape> {
        if depth > MAX_DEPTH {
            return Err(Unsure);
        }
        self.eat(b'[')?;
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(Shape::Other);
        }
        loop {
            element(self, depth)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(Shape::NonEmpty);
                }
                _ => return Err(Unsure),
            }
        }
    }

    /// `null` (`false`), or an object, read by `read` (`true`); anything else is left to the
    /// general reading.
    fn null_or_object(
        &mut self,
        depth: u32,
        read: impl FnMut(&mut Self, &'a [u8], u32) -> R<()>,
    ) -> R<()> {
        self.ws();
        match self.peek() {
            Some(b'n') => self.literal(b"null"),
            Some(b'{') => self.object(depth + 1, read).map(drop),
            _ => Err(Unsure),
        }
    }

    fn top(&mut self, api: Api) -> R<WholeRead> {
        let mut t = Top::default();
        self.ws();
        if self.peek() != Some(b'{') {
            return Err(Unsure);
        }
        self.object(1, |c, key, depth| {
            match key {
                b"usage" => {
                    t.once(1)?;
                    let (mut prompt, mut completion) = (0u8, 0u8);
                    c.null_or_object(depth, |c, key, _| {
                        match key {
                            b"prompt_tokens" | b"input_tokens" => {
                                prompt += 1;
                                t.prompt = c.count()?;
                            }
                            b"completion_tokens" | b"output_tokens" => {
                                completion += 1;
                                t.completion = c.count()?;
                            }
                            _ => {
                                c.value(depth + 1)?;
                            }
                        }
                        if prompt > 1 || completion > 1 {
                            return Err(Unsure);
                        }
                        Ok(())
                    })?;
                }
                b"prompt_eval_count" => {
                    t.once(1 << 1)?;
                    t.prompt_eval_count = c.count()?;
                }
                b"eval_count" => {
                    t.once(1 << 2)?;
                    t.eval_count = c.count()?;
                }
                b"choices" => {
                    t.once(1 << 3)?;
                    c.ws();
                    match c.peek() {
                        Some(b'n') => c.literal(b"null")?,
                        Some(b'[') => {
                            c.array(depth + 1, |c, depth| {
                                t.choices += 1;
                                c.ws();
                                if c.peek() != Some(b'{') {
                                    return c.value(depth).map(drop);
                                }
                                // The choice's last `finish_reason` counts, when a string.
                                let mut reason = None;
                                c.object(depth + 1, |c, key, depth| {
                                    if key == b"finish_reason" {
                                        reason = c.reason(depth)?;
                                    } else {
                                        c.value(depth)?;
                                    }
                                    Ok(())
                                })?;
                                if let Some(r) = reason {
                                    t.choice_reason = r;
                                }
                                Ok(())
                            })?;
                        }
                        _ => return Err(Unsure),
                    }
                }
                b"content" => {
                    t.once(1 << 4)?;
                    t.content = c.value(depth)?;
                }
                b"output" => {
                    t.once(1 << 5)?;
                    t.output = c.value(depth)?;
                }
                b"message" => {
                    t.once(1 << 6)?;
                    c.ws();
                    if c.peek() == Some(b'{') {
                        // Its last `content` counts.
                        c.object(depth + 1, |c, key, depth| {
                            let shape = c.value(depth)?;
                            if key == b"content" {
                                t.message_content = shape;
                            }
                            Ok(())
                        })?;
                    } else {
                        c.value(depth)?;
                    }
                }
                b"response" => {
                    t.once(1 << 7)?;
                    t.response = c.value(depth)?;
                }
                b"status" => {
                    t.once(1 << 8)?;
                    t.status = c.reason(depth)?.flatten();
                }
                b"stop_reason" => {
                    t.once(1 << 9)?;
                    t.stop_reason = c.reason(depth)?.flatten();
                }
                b"done_reason" => {
                    t.once(1 << 10)?;
                    c.ws();
                    match c.peek() {
                        Some(b'n') => c.literal(b"null")?,
                        Some(b'"') => t.done_reason = c.reason(depth)?.flatten(),
                        _ => return Err(Unsure),
                    }
                }
                _ => {
                    c.value(depth)?;
                }
            }
            Ok(())
        })?;
        self.ws();
        if self.i != self.b.len() {
            return Err(Unsure);
        }
        let finish = match api {
            Api::ChatCompletions | Api::Completions => t.choice_reason,
            Api::Responses => t.status,
            Api::Messages => t.stop_reason,
            Api::OllamaChat | Api::OllamaGenerate => t.done_reason,
        };
        let has_content = match api {
            Api::ChatCompletions | Api::Completions => t.choices > 0,
            Api::Responses => t.output == Shape::NonEmpty,
            Api::Messages => t.content == Shape::NonEmpty,
            Api::OllamaChat => t.message_content == Shape::NonEmpty,
            Api::OllamaGenerate => t.response == Shape::NonEmpty,
        };
        Ok(WholeRead {
            finish,
            prompt: t.prompt_eval_count.or(t.prompt),
            generated: t.eval_count.or(t.completion),
            has_content,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::Mangler;
    use super::super::{read_whole, whole_readings_agree};
    use super::*;

    const APIS: [Api; 6] = [
        Api::ChatCompletions,
        Api::Completions,
        Api::Responses,
        Api::Messages,
        Api::OllamaChat,
        Api::OllamaGenerate,
    ];

    /// Responses as servers send them: each is read by the fast path, as the general one reads it.
    const USUAL: &[&str] = &[
        r#"{"choices":[{"finish_reason":"stop","index":0,"message":{"content":"t0 t1 t2 ","role":"assistant"}}],"id":"cmpl-1","model":"bench","object":"chat.completion","usage":{"completion_tokens":20,"prompt_tokens":10,"total_tokens":30}}"#,
        r#"{"id":"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG","object":"chat.completion","created":1741570283,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"The image shows a wooden boardwalk \u00e9 \"quoted\"\n","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":1117,"completion_tokens":46,"total_tokens":1163,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_fc9f1d7035"}"#,
        "{\n  \"id\": \"cmpl-2\",\n  \"object\": \"text_completion\",\n  \"choices\": [ { \"text\": \"x\", \"index\": 0, \"logprobs\": null, \"finish_reason\": \"length\" } ],\n  \"usage\": { \"prompt_tokens\": 5, \"completion_tokens\": 7, \"total_tokens\": 12 }\n}\n",
        r#"{"id":"msg_01","type":"message","role":"assistant","model":"claude","content":[{"type":"text","text":"Hi!"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":2095,"output_tokens":503}}"#,
        r#"{"id":"resp_1","object":"response","created_at":1741476542,"status":"completed","error":null,"output":[{"type":"message","id":"msg_1","status":"completed","role":"assistant","content":[{"type":"output_text","text":"In a peaceful grove","annotations":[]}]}],"usage":{"input_tokens":36,"input_tokens_details":{"cached_tokens":0},"output_tokens":87,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":123}}"#,
        r#"{"model":"llama3.2","created_at":"2023-12-12T14:13:43.416799Z","message":{"role":"assistant","content":"Hello! How are you today?"},"done":true,"done_reason":"stop","total_duration":5191566416,"load_duration":2154458,"prompt_eval_count":26,"prompt_eval_duration":383809000,"eval_count":298,"eval_duration":4799921000}"#,
        r#"{"model":"llama3.2","created_at":"2023-08-04T19:22:45.499127Z","response":"The sky is blue because it is the color of the sky.","done":true,"context":[1,2,3],"total_duration":5043500667,"load_duration":5025959,"prompt_eval_count":26,"prompt_eval_duration":325953000,"eval_count":290,"eval_duration":4709213000,"done_reason":"length"}"#,
        r#"{"choices":[],"usage":null,"message":"m","output":[],"content":{},"response":"","status":null,"stop_reason":7,"done_reason":null,"neg":-1.5,"t":true,"f":false,"deep":[[[{"a":[{}]}]]]}"#,
        r#"{"choices":[{"finish_reason":"a"},{"finish_reason":""},{"finish_reason":null},{"x":1}]}"#,
        r#"{"choices":[{"finish_reason":"stop","finish_reason":null}],"status":"in\tprogress\u0021"}"#,
        r#"{}"#,
    ];

    #[test]
    fn the_usual_responses_take_the_fast_path_and_read_as_the_general_reading() {
        for doc in USUAL {
            for api in APIS {
                let fast = read(api, doc.as_bytes());
                assert!(fast.is_some(), "{api:?}: not read fast: {doc}");
                assert_eq!(fast, read_whole(api, doc.as_bytes()), "{api:?}: {doc}");
            }
        }
        let r = read(Api::ChatCompletions, USUAL[0].as_bytes()).unwrap();
        assert_eq!(
            (r.prompt, r.generated, r.has_content),
            (Some(10), Some(20), true)
        );
        assert_eq!(
            r.finish.map(|f| f.as_str().to_string()).as_deref(),
            Some("stop")
        );
        let r = read(Api::Responses, USUAL[9].as_bytes()).unwrap();
        assert_eq!(
            r.finish.map(|f| f.as_str().to_string()).as_deref(),
            Some("in\tprogress!")
        );
        // The last string reason counts; an empty one is none.
        let r = read(Api::ChatCompletions, USUAL[8].as_bytes()).unwrap();
        assert_eq!(r.finish, None);
    }

    #[test]
    fn what_the_fast_path_is_not_sure_of_goes_to_the_general_reading() {
        for doc in [
            // Duplicate fields (serde refuses), aliases of one count, counts that are not
            // unsigned integers, an array for usage, escaped keys, exponents, surrogates.
            r#"{"usage":{},"usage":{}}"#,
            r#"{"usage":{"prompt_tokens":1,"input_tokens":2}}"#,
            r#"{"usage":{"prompt_tokens":-1}}"#,
            r#"{"usage":{"prompt_tokens":1.0}}"#,
            r#"{"usage":{"prompt_tokens":"1"}}"#,
            r#"{"usage":[1,2]}"#,
            r#"{"eval_count":18446744073709551616}"#,
            r#"{"us\u0061ge":{"prompt_tokens":1}}"#,
            r#"{"n":1e5}"#,
            r#"{"s":"\ud83d\ude00"}"#,
            r#"{"done_reason":1}"#,
            r#"{"choices":{}}"#,
            r#"[1,2]"#,
            // Not valid JSON at all.
            r#"{"a":01}"#,
            r#"{"a":1,}"#,
            r#"{"a":"\x"}"#,
            "{\"a\":\"\u{1}\"}",
            r#"{"a":1} x"#,
            r#"{"a":tru}"#,
            r#"{"a":-}"#,
            r#"{"a":1."#,
            r#"{"#,
            "",
        ] {
            for api in APIS {
                assert_eq!(read(api, doc.as_bytes()), None, "{api:?}: {doc}");
            }
        }
        assert_eq!(read(Api::ChatCompletions, b"{\"a\":\"\xff\"}"), None);
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(70), "]".repeat(70));
        assert_eq!(read(Api::ChatCompletions, deep.as_bytes()), None);
        assert!(read_whole(Api::ChatCompletions, deep.as_bytes()).is_some());
    }

    #[test]
    fn a_plain_run_ends_at_the_first_quote_backslash_or_control_character() {
        let naive = |b: &[u8]| {
            b.iter()
                .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
                .unwrap_or(b.len())
        };
        let pick = b"ab\"\\\x00\x1f\x20\x7f\x80\xa2\xdc\xff!~";
        let mut m = Mangler(0x2545_F491_4F6C_DD1D);
        for len in 0..40 {
            for _ in 0..200 {
                let b: Vec<u8> = (0..len)
                    .map(|_| {
                        let r = m.next();
                        // Mostly plain bytes, so runs are long.
                        if r.is_multiple_of(4) {
                            pick[(r >> 8) as usize % pick.len()]
                        } else {
                            b'a' + (r >> 8) as u8 % 26
                        }
                    })
                    .collect();
                assert_eq!(plain_run(&b), naive(&b), "{b:?}");
            }
        }
    }

    #[test]
    fn mangled_responses_read_fast_only_as_the_general_reading_does() {
        // Every usual response with bytes dropped, doubled or replaced, by a fixed generator:
        // whenever the fast path answers, the general reading answers the same.
        let mut m = Mangler(0x9E37_79B9_7F4A_7C15);
        let bytes = b"{}[]\":,0-1.e\\u tfn\x01";
        let (mut tried, mut answered) = (0, 0);
        for doc in USUAL {
            for _ in 0..400 {
                let d = m.mangle(doc.as_bytes(), bytes);
                for api in APIS {
                    tried += 1;
                    answered += usize::from(read(api, &d).is_some());
                    assert!(
                        whole_readings_agree(api, &d),
                        "{api:?}: {}",
                        String::from_utf8_lossy(&d)
                    );
                }
            }
        }
        // Both kinds were tried: some mangled documents are still valid, most are not.
        assert!(answered > 0 && answered < tried, "{answered} of {tried}");
    }
}
