//! `powermetrics -f plist` documents (one per sample window, NUL-separated on the stream).
//!
//! Units, as powermetrics prints them: `*_power` and `combined_power` are mW averaged over the
//! window; `*_energy` are mJ used in the window; the window is `elapsed_ns`; cluster `freq_hz`
//! is Hz but `gpu.freq_hz` is MHz. Duplicate keys (the `gpu` dict repeats `idle_ns`/
//! `idle_ratio` on macOS 13/14) are accepted, the last one winning as in a plist dictionary,
//! and every key is optional.

use quick_xml::Reader;
use quick_xml::events::Event;

use super::ParseError;

const WHAT: &str = "powermetrics plist";

/// A SoC component powermetrics reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// CPU clusters.
    Cpu,
    /// GPU.
    Gpu,
    /// Apple Neural Engine.
    Ane,
}

impl Component {
    /// All components, in label order.
    pub const ALL: [Component; 3] = [Component::Cpu, Component::Gpu, Component::Ane];

    /// The `component` label value.
    pub fn label(self) -> &'static str {
        match self {
            Component::Cpu => "cpu",
            Component::Gpu => "gpu",
            Component::Ane => "ane",
        }
    }
}

/// The raw readings of one component in one window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Reading {
    /// `processor.<c>_power`, mW.
    pub power_mw: Option<f64>,
    /// `processor.<c>_energy`, mJ in the window.
    pub energy_mj: Option<f64>,
}

/// One component's resolved values for one window (each `None` when it cannot be known, e.g.
/// a power key without `elapsed_ns` gives no energy).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resolved {
    /// Average power over the window, W.
    pub watts: Option<f64>,
    /// Energy used in the window, J.
    pub joules: Option<f64>,
}

/// One parsed sample window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// The real window, seconds (`elapsed_ns`).
    pub elapsed_s: Option<f64>,
    /// `hw_model`, e.g. `Mac15,14`.
    pub hw_model: Option<String>,
    /// `kern_osversion`, the OS build.
    pub os_build: Option<String>,
    /// CPU, GPU and ANE readings, in [`Component::ALL`] order.
    pub readings: [Reading; 3],
    /// `gpu.freq_hz`, MHz.
    pub gpu_freq_mhz: Option<f64>,
    /// `gpu.idle_ratio`.
    pub gpu_idle_ratio: Option<f64>,
    /// `gpu.down_ratio` (newer macOS).
    pub gpu_down_ratio: Option<f64>,
    /// `processor.clusters[]`: name and active frequency in Hz, in document order.
    pub clusters: Vec<(String, f64)>,
    /// `thermal_pressure`, as printed.
    pub thermal_pressure: Option<String>,
}

/// Parses one document. Leading NULs and whitespace (the stream separator) are skipped.
///
/// A streaming parse (quick-xml events over the borrowed bytes, no document tree) that reads
/// the keys above and steps over the rest: the content of a dict or array none of whose values
/// is read (the per-CPU `cpus` arrays, most of a document) is skipped to its matching end tag
/// without being checked. Everything else must be a well-formed plist, and a value of one of
/// the keys above that is not a number where a number belongs is an error naming the key.
pub fn parse(doc: &[u8]) -> Result<Sample, ParseError> {
    let start = doc
        .iter()
        .position(|b| !(b.is_ascii_whitespace() || *b == 0))
        .unwrap_or(doc.len());
    let doc = &doc[start..];
    if doc.is_empty() {
        return Err(ParseError::Empty { what: WHAT });
    }
    let mut reader = Reader::from_reader(doc);
    let config = reader.config_mut();
    config.trim_text(false);
    config.check_end_names = true;
    config.expand_empty_elements = true;
    let mut p = Parser::default();
    // The reader's own positions don't count the content skipped past it.
    let fail = |reader: &Reader<&[u8]>, skipped: usize, why: &dyn std::fmt::Display| {
        let at = reader.error_position().max(reader.buffer_position()) as usize;
        ParseError::invalid(
            WHAT,
            format!(
                "not a plist document: {why} (at byte {})",
                start + skipped + at
            ),
        )
    };
    loop {
        let event = reader
            .read_event()
            .map_err(|e| fail(&reader, p.skipped, &e))?;
        match p.event(&mut reader, doc, event) {
            Ok(true) => {}
            Ok(false) => break,
            Err(Step::Xml(e)) => return Err(fail(&reader, p.skipped, &e)),
            Err(Step::Plist(why)) => return Err(fail(&reader, p.skipped, &why)),
            Err(Step::Value(e)) => return Err(e),
        }
    }
    p.finish()
}

/// Where a container sits: the only places whose keys are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Root,
    Processor,
    Gpu,
    Clusters,
    Cluster,
    Other,
}

/// A key that is read, by the dictionary it is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    ElapsedNs,
    HwModel,
    OsBuild,
    Thermal,
    Processor,
    Gpu,
    Power(usize),
    Energy(usize),
    Clusters,
    GpuFreq,
    GpuIdle,
    GpuDown,
    GpuDictEnergy,
    ClusterName,
    ClusterFreq,
    Unread,
}

/// The keys that are read: the dictionary each is in, its name, and what it sets.
const KEYS: [(Role, &str, Field); 19] = [
    (Role::Root, "elapsed_ns", Field::ElapsedNs),
    (Role::Root, "hw_model", Field::HwModel),
    (Role::Root, "kern_osversion", Field::OsBuild),
    (Role::Root, "thermal_pressure", Field::Thermal),
    (Role::Root, "processor", Field::Processor),
    (Role::Root, "gpu", Field::Gpu),
    (Role::Processor, "cpu_power", Field::Power(0)),
    (Role::Processor, "gpu_power", Field::Power(1)),
    (Role::Processor, "ane_power", Field::Power(2)),
    (Role::Processor, "cpu_energy", Field::Energy(0)),
    (Role::Processor, "gpu_energy", Field::Energy(1)),
    (Role::Processor, "ane_energy", Field::Energy(2)),
    (Role::Processor, "clusters", Field::Clusters),
    (Role::Gpu, "freq_hz", Field::GpuFreq),
    (Role::Gpu, "idle_ratio", Field::GpuIdle),
    (Role::Gpu, "down_ratio", Field::GpuDown),
    (Role::Gpu, "gpu_energy", Field::GpuDictEnergy),
    (Role::Cluster, "name", Field::ClusterName),
    (Role::Cluster, "freq_hz", Field::ClusterFreq),
];

impl Field {
    fn of(role: Role, key: &str) -> Field {
        KEYS.iter()
            .find(|(r, k, _)| *r == role && *k == key)
            .map_or(Field::Unread, |(_, _, f)| *f)
    }

    /// The key's path, for errors.
    fn path(self) -> String {
        let Some((role, key, _)) = KEYS.iter().find(|(_, _, f)| *f == self) else {
            return "?".into();
        };
        let within = match role {
            Role::Processor => "processor.",
            Role::Gpu => "gpu.",
            Role::Cluster => "processor.clusters[].",
            Role::Root | Role::Clusters | Role::Other => "",
        };
        format!("{within}{key}")
    }
}

/// An open `<dict>` or `<array>`.
#[derive(Debug, Clone, Copy)]
struct Frame {
    dict: bool,
    role: Role,
    /// In a dict: the key waiting for its value.
    key: Option<Field>,
}

/// Why a step failed: the XML, the plist structure, or a value we read.
enum Step {
    Xml(quick_xml::Error),
    Plist(&'static str),
    Value(ParseError),
}

impl From<quick_xml::Error> for Step {
    fn from(e: quick_xml::Error) -> Step {
        Step::Xml(e)
    }
}

/// A leaf value's element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leaf {
    Str,
    Integer,
    Real,
    Other,
}

#[derive(Default)]
struct Parser {
    stack: Vec<Frame>,
    /// A top-level value has been read.
    done: bool,
    root_is_dict: bool,
    s: Sample,
    has_processor: bool,
    has_gpu: bool,
    gpu_dict_energy: Option<f64>,
    cluster: (Option<String>, Option<f64>),
    text: String,
    /// Bytes stepped over without the reader (content of containers that are not read).
    skipped: usize,
}

impl Parser {
    /// One event; `Ok(false)` at the end of the input.
    fn event(
        &mut self,
        reader: &mut Reader<&[u8]>,
        doc: &[u8],
        event: Event<'_>,
    ) -> Result<bool, Step> {
        match event {
            Event::Start(e) => match e.local_name().as_ref() {
                "plist" => {}
                name @ ("dict" | "array") => {
                    if self.open(name == "dict")? == Role::Other {
                        self.skip_content(reader, doc, name);
                    }
                }
                "key" => {
                    let role = match self.stack.last() {
                        Some(f) if f.dict && f.key.is_none() => f.role,
                        _ => {
                            return Err(Step::Plist(
                                "a <key> outside a dictionary, or two keys in a row",
                            ));
                        }
                    };
                    // No key of a dictionary we don't read is read: its text is only checked.
                    let key = if role == Role::Other {
                        read_text(reader, None)?;
                        Field::Unread
                    } else {
                        read_text(reader, Some(&mut self.text))?;
                        Field::of(role, &self.text)
                    };
                    if let Some(f) = self.stack.last_mut() {
                        f.key = Some(key);
                    }
                }
                "string" => self.leaf(reader, Leaf::Str)?,
                "integer" => self.leaf(reader, Leaf::Integer)?,
                "real" => self.leaf(reader, Leaf::Real)?,
                "date" | "data" | "true" | "false" => self.leaf(reader, Leaf::Other)?,
                _ => return Err(Step::Plist("an element that is not a plist element")),
            },
            Event::End(e) => match e.local_name().as_ref() {
                "dict" | "array" => self.close()?,
                _ => {}
            },
            Event::Text(t) => {
                if !t.chars().all(char::is_whitespace) {
                    return Err(Step::Plist("text outside an element"));
                }
            }
            Event::GeneralRef(r) => {
                let mut one = String::new();
                push_ref(&mut one, &r)?;
                if !one.chars().all(char::is_whitespace) {
                    return Err(Step::Plist("text outside an element"));
                }
            }
            Event::Eof => {
                if !self.stack.is_empty() {
                    return Err(Step::Plist("the document ends inside a dict or array"));
                }
                return Ok(false);
            }
            Event::Empty(_)
            | Event::CData(_)
            | Event::Comment(_)
            | Event::Decl(_)
            | Event::PI(_)
            | Event::DocType(_) => {}
        }
        Ok(true)
    }

    /// The key a value in the current container is for (`Unread` for array items other than
    /// clusters), after checking a value may stand here.
    fn value_slot(&mut self) -> Result<(Field, Role), Step> {
        match self.stack.last_mut() {
            None if self.done => Err(Step::Plist("more than one top-level value")),
            None => {
                self.done = true;
                Ok((Field::Unread, Role::Root))
            }
            Some(f) if f.dict => match f.key.take() {
                Some(k) => Ok((k, f.role)),
                None => Err(Step::Plist("a dictionary value without a <key>")),
            },
            Some(f) => Ok((Field::Unread, f.role)),
        }
    }

    /// Steps the reader over the content of a container none of whose values is read, up to
    /// its end tag (so the reader still sees that, and checks it). A self-closing one has no
    /// content; one without a matching end tag is left to the reader, which reports it.
    fn skip_content(&mut self, reader: &mut Reader<&[u8]>, doc: &[u8], name: &str) {
        let rest = *reader.get_ref();
        if doc[..doc.len() - rest.len()].ends_with(b"/>") {
            return;
        }
        if let Some(n) = content_len(rest, name.as_bytes()) {
            *reader.get_mut() = &rest[n..];
            self.skipped += n;
        }
    }

    fn open(&mut self, dict: bool) -> Result<Role, Step> {
        let at_top = self.stack.is_empty();
        let (field, parent) = self.value_slot()?;
        self.assigned(field, None, Leaf::Other)?;
        let role = match (dict, parent, field) {
            (true, Role::Root, _) if at_top => {
                self.root_is_dict = true;
                Role::Root
            }
            (true, _, Field::Processor) => {
                self.has_processor = true;
                Role::Processor
            }
            (true, _, Field::Gpu) => {
                self.has_gpu = true;
                Role::Gpu
            }
            (false, _, Field::Clusters) => Role::Clusters,
            (true, Role::Clusters, _) => {
                self.cluster = (None, None);
                Role::Cluster
            }
            _ => Role::Other,
        };
        self.stack.push(Frame {
            dict,
            role,
            key: None,
        });
        Ok(role)
    }

    fn close(&mut self) -> Result<(), Step> {
        let frame = self
            .stack
            .pop()
            .ok_or(Step::Plist("a closing tag without its opening"))?;
        if frame.key.is_some() {
            return Err(Step::Plist("a <key> without a value"));
        }
        if frame.role == Role::Cluster
            && let (Some(name), Some(hz)) = std::mem::take(&mut self.cluster)
        {
            self.s.clusters.push((name, hz));
        }
        Ok(())
    }

    fn leaf(&mut self, reader: &mut Reader<&[u8]>, leaf: Leaf) -> Result<(), Step> {
        let (field, _) = self.value_slot()?;
        if field == Field::Unread {
            return read_text(reader, None);
        }
        read_text(reader, Some(&mut self.text))?;
        let text = std::mem::take(&mut self.text);
        let r = self.assigned(field, Some(&text), leaf);
        self.text = text;
        r
    }

    /// Sets `field` from a value (`text` for leaves, `None` for containers): the last value of
    /// a key wins, and a value of the wrong kind makes the field unknown.
    fn assigned(&mut self, field: Field, text: Option<&str>, leaf: Leaf) -> Result<(), Step> {
        let string = || text.filter(|_| leaf == Leaf::Str).map(str::to_string);
        let number = || -> Result<Option<f64>, Step> {
            let Some(t) = text else { return Ok(None) };
            let t = t.trim();
            let v = match leaf {
                Leaf::Integer => integer(t),
                Leaf::Real => t.parse::<f64>().ok(),
                _ => return Ok(None),
            };
            match v {
                Some(v) => Ok(Some(v).filter(|v| v.is_finite())),
                None => Err(Step::Value(ParseError::invalid(
                    WHAT,
                    format!("{}: `{t}` is not a number", field.path()),
                ))),
            }
        };
        let s = &mut self.s;
        match field {
            Field::Unread => {}
            Field::ElapsedNs => s.elapsed_s = number()?.filter(|v| *v > 0.0).map(|ns| ns / 1e9),
            Field::HwModel => s.hw_model = string(),
            Field::OsBuild => s.os_build = string(),
            Field::Thermal => s.thermal_pressure = string(),
            Field::Processor => {
                self.has_processor = false;
                s.readings = Default::default();
                s.clusters.clear();
            }
            Field::Gpu => {
                self.has_gpu = false;
                s.gpu_freq_mhz = None;
                s.gpu_idle_ratio = None;
                s.gpu_down_ratio = None;
                self.gpu_dict_energy = None;
            }
            Field::Power(i) => s.readings[i].power_mw = number()?,
            Field::Energy(i) => s.readings[i].energy_mj = number()?,
            Field::Clusters => s.clusters.clear(),
            Field::GpuFreq => s.gpu_freq_mhz = number()?,
            Field::GpuIdle => s.gpu_idle_ratio = number()?,
            Field::GpuDown => s.gpu_down_ratio = number()?,
            Field::GpuDictEnergy => self.gpu_dict_energy = number()?,
            Field::ClusterName => self.cluster.0 = string(),
            Field::ClusterFreq => self.cluster.1 = number()?,
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Sample, ParseError> {
        if !self.done {
            return Err(ParseError::invalid(WHAT, "not a plist document: no value"));
        }
        if !self.root_is_dict {
            return Err(ParseError::invalid(
                WHAT,
                "the top level is not a dictionary",
            ));
        }
        if !self.has_processor && !self.has_gpu && self.s.thermal_pressure.is_none() {
            return Err(ParseError::invalid(
                WHAT,
                "no processor, gpu or thermal_pressure key (is this powermetrics output?)",
            ));
        }
        // The processor dict's gpu_energy is the one that matches gpu_power; use the gpu dict's
        // only when the processor dict has none.
        let r = &mut self.s.readings[1];
        if self.has_gpu && r.energy_mj.is_none() {
            r.energy_mj = self.gpu_dict_energy;
        }
        Ok(self.s)
    }
}

/// The length of a container's content: `rest` starts just after its start tag `<name>`, and
/// the content ends at the matching `</name>` (same-named containers nest). Comments, CDATA
/// and processing instructions are stepped over whole. `None` when there is no matching end.
fn content_len(rest: &[u8], name: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = 0;
    loop {
        i += memchr::memchr(b'<', rest.get(i..)?)?;
        let tag = &rest[i + 1..];
        let past = |open: usize, close: &[u8]| {
            let k = memchr::memmem::find(tag.get(open..)?, close)?;
            Some(i + 1 + open + k + close.len())
        };
        if tag.starts_with(b"!--") {
            i = past(3, b"-->")?;
        } else if tag.starts_with(b"![CDATA[") {
            i = past(8, b"]]>")?;
        } else if tag.starts_with(b"?") {
            i = past(1, b"?>")?;
        } else if let Some(closing) = tag.strip_prefix(b"/") {
            let ends_here = closing
                .strip_prefix(name)
                .is_some_and(|after| after.trim_ascii_start().first() == Some(&b'>'));
            if ends_here {
                if depth == 0 {
                    return Some(i);
                }
                depth -= 1;
            }
            i += 1;
        } else {
            let opens = tag.strip_prefix(name).is_some_and(|after| {
                matches!(
                    after.first(),
                    Some(b'>' | b'/' | b' ' | b'\t' | b'\r' | b'\n')
                )
            });
            if opens {
                let end = memchr::memchr(b'>', tag)?;
                if tag[..end].last() != Some(&b'/') {
                    depth += 1;
                }
            }
            i += 1;
        }
    }
}

/// A plist `<integer>`: decimal (signed first, as CFPropertyList does) or `0x` hex.
fn integer(t: &str) -> Option<f64> {
    if let Some(hex) = t.strip_prefix("0x") {
        return u64::from_str_radix(hex, 16).ok().map(|v| v as f64);
    }
    t.parse::<i64>()
        .map(|v| v as f64)
        .or_else(|_| t.parse::<u64>().map(|v| v as f64))
        .ok()
}

/// Reads an element's text up to its end tag into `out` (entities resolved), or only checks it
/// when there is no `out`.
fn read_text(reader: &mut Reader<&[u8]>, mut out: Option<&mut String>) -> Result<(), Step> {
    if let Some(out) = out.as_deref_mut() {
        out.clear();
    }
    loop {
        match reader.read_event()? {
            Event::Text(t) => {
                if let Some(out) = out.as_deref_mut() {
                    out.push_str(&t);
                }
            }
            Event::CData(c) => {
                if let Some(out) = out.as_deref_mut() {
                    out.push_str(&c);
                }
            }
            Event::GeneralRef(r) => match out.as_deref_mut() {
                Some(out) => push_ref(out, &r)?,
                None => drop(r.resolve_char_ref()?),
            },
            Event::End(_) => return Ok(()),
            Event::Start(_) => return Err(Step::Plist("an element inside a value")),
            Event::Eof => return Err(Step::Plist("the document ends inside a value")),
            Event::Empty(_)
            | Event::Comment(_)
            | Event::Decl(_)
            | Event::PI(_)
            | Event::DocType(_) => {}
        }
    }
}

/// Appends a character or predefined entity reference (`&#38;`, `&amp;`); others are dropped.
fn push_ref(out: &mut String, r: &quick_xml::events::BytesRef<'_>) -> Result<(), Step> {
    if let Some(c) = r.resolve_char_ref()? {
        out.push(c);
        return Ok(());
    }
    out.push_str(match &**r {
        "amp" => "&",
        "lt" => "<",
        "gt" => ">",
        "quot" => "\"",
        "apos" => "'",
        _ => "",
    });
    Ok(())
}

impl Sample {
    /// The reading of one component.
    pub fn reading(&self, c: Component) -> Reading {
        self.readings[Component::ALL.iter().position(|x| *x == c).unwrap_or(0)]
    }

    /// Power and energy of one component in this window, or `None` when unknown.
    ///
    /// A missing or zero power key is derived from the energy key over `elapsed_ns`, and the
    /// other way round. A CPU that reports exactly zero while the GPU or ANE draws power is the
    /// known zero-`cpu_power` quirk of newer macOS, and is unknown rather than zero.
    pub fn resolve(&self, c: Component) -> Option<Resolved> {
        let r = self.reading(c);
        let dt = self.elapsed_s;
        let p = r.power_mw.filter(|v| *v > 0.0);
        let e = r.energy_mj.filter(|v| *v > 0.0);
        let watts = p.map(|mw| mw / 1e3).or_else(|| Some(e? / 1e3 / dt?));
        let joules = e.map(|mj| mj / 1e3).or_else(|| Some(p? / 1e3 * dt?));
        if watts.is_some() || joules.is_some() {
            return Some(Resolved { watts, joules });
        }
        let reported_zero = r.power_mw == Some(0.0) || r.energy_mj == Some(0.0);
        let others_draw = Component::ALL.iter().filter(|o| **o != c).any(|o| {
            let r = self.reading(*o);
            r.power_mw.unwrap_or(0.0) > 0.0 || r.energy_mj.unwrap_or(0.0) > 0.0
        });
        (reported_zero && !(c == Component::Cpu && others_draw)).then_some(Resolved {
            watts: Some(0.0),
            joules: Some(0.0),
        })
    }

    /// Share of the window the GPU was active, 0–1.
    pub fn gpu_active_ratio(&self) -> Option<f64> {
        let idle = self.gpu_idle_ratio?;
        Some((1.0 - idle - self.gpu_down_ratio.unwrap_or(0.0)).clamp(0.0, 1.0))
    }

    /// GPU frequency in Hz (`gpu.freq_hz` is MHz).
    pub fn gpu_frequency_hz(&self) -> Option<f64> {
        self.gpu_freq_mhz.map(|mhz| mhz * 1e6)
    }

    /// Thermal pressure level: 0 nominal, 1 moderate, 2 heavy, 3 critical; `Err` with the text
    /// when the value is not one powermetrics is known to print.
    pub fn thermal_level(&self) -> Option<Result<u8, &str>> {
        let t = self.thermal_pressure.as_deref()?;
        Some(match t.trim().to_ascii_lowercase().as_str() {
            "nominal" => Ok(0),
            "moderate" | "fair" => Ok(1),
            "heavy" | "serious" => Ok(2),
            "critical" | "trapping" | "sleeping" => Ok(3),
            _ => Err(t),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parse this module replaced, as an oracle: the whole document read into a plist
    /// tree with the `plist` crate, then the keys picked from it.
    fn through_plist_tree(doc: &[u8]) -> Option<Sample> {
        use plist::{Dictionary, Value};
        fn number(d: &Dictionary, key: &str) -> Option<f64> {
            match d.get(key)? {
                Value::Real(r) => Some(*r),
                Value::Integer(i) => i
                    .as_signed()
                    .map(|v| v as f64)
                    .or_else(|| i.as_unsigned().map(|v| v as f64)),
                _ => None,
            }
            .filter(|v| v.is_finite())
        }
        fn string(d: &Dictionary, key: &str) -> Option<String> {
            d.get(key).and_then(Value::as_string).map(str::to_string)
        }
        let start = doc
            .iter()
            .position(|b| !(b.is_ascii_whitespace() || *b == 0))?;
        let value = Value::from_reader_xml(&doc[start..]).ok()?;
        let root = value.as_dictionary()?;
        let mut s = Sample {
            elapsed_s: number(root, "elapsed_ns")
                .filter(|v| *v > 0.0)
                .map(|ns| ns / 1e9),
            hw_model: string(root, "hw_model"),
            os_build: string(root, "kern_osversion"),
            thermal_pressure: string(root, "thermal_pressure"),
            ..Sample::default()
        };
        let processor = root.get("processor").and_then(Value::as_dictionary);
        let gpu = root.get("gpu").and_then(Value::as_dictionary);
        if processor.is_none() && gpu.is_none() && s.thermal_pressure.is_none() {
            return None;
        }
        if let Some(p) = processor {
            for (i, c) in Component::ALL.iter().enumerate() {
                s.readings[i] = Reading {
                    power_mw: number(p, &format!("{}_power", c.label())),
                    energy_mj: number(p, &format!("{}_energy", c.label())),
                };
            }
            for cluster in p
                .get("clusters")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_dictionary)
            {
                if let (Some(name), Some(hz)) =
                    (string(cluster, "name"), number(cluster, "freq_hz"))
                {
                    s.clusters.push((name, hz));
                }
            }
        }
        if let Some(g) = gpu {
            s.gpu_freq_mhz = number(g, "freq_hz");
            s.gpu_idle_ratio = number(g, "idle_ratio");
            s.gpu_down_ratio = number(g, "down_ratio");
            if s.readings[1].energy_mj.is_none() {
                s.readings[1].energy_mj = number(g, "gpu_energy");
            }
        }
        Some(s)
    }

    fn testdata(path: &str) -> Vec<u8> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
        std::fs::read(dir.join(path)).unwrap()
    }

    // Every fixture and real capture reads the same as through the whole plist tree.
    #[test]
    fn the_streaming_parse_agrees_with_the_plist_tree() {
        for path in [
            "macos/powermetrics-m3ultra.plist",
            "macos/powermetrics-m4max-zero-cpu.plist",
            "real/powermetrics/pumas-powermetrics-output-m1.xml",
            "real/powermetrics/pumas-powermetrics-output-m1-2.xml",
        ] {
            let doc = testdata(path);
            let want = through_plist_tree(&doc).unwrap();
            assert!(!want.clusters.is_empty() || path.contains("zero"), "{path}");
            assert_eq!(parse(&doc).unwrap(), want, "{path}");
        }
    }

    // The corners of the format, each read the same way as through the plist tree: entities,
    // comments, empty elements, hex integers, values of the wrong kind, repeated
    // processor dicts, keys nested where they are not read, whitespace, numbers that are not
    // finite.
    #[test]
    fn the_corners_agree_with_the_plist_tree() {
        let bodies = [
            "<key>hw_model</key><string>Mac&amp;&#49;5,14 &lt;x&gt;</string><key>thermal_pressure</key><string>Nominal</string>",
            "<!-- c --><key>processor</key><dict><key>cpu_power</key><real>12.5</real><key>cpu_energy</key><integer>0x10</integer></dict>",
            "<key>processor</key><dict><key>cpu_power</key><string>12</string><key>gpu_power</key><true/><key>ane_power</key><dict/></dict>",
            "<key>processor</key><dict><key>cpu_power</key><real>1</real></dict><key>processor</key><dict><key>gpu_power</key><real>2</real></dict>",
            "<key>processor</key><dict><key>cpu_power</key><real>1</real></dict><key>processor</key><string>gone</string><key>gpu</key><dict/>",
            "<key>x</key><dict><key>processor</key><dict><key>cpu_power</key><real>9</real></dict></dict><key>gpu</key><dict><key>gpu_energy</key><integer>-5</integer></dict>",
            "<key>processor</key><dict><key>gpu_energy</key><integer>7</integer></dict><key>gpu</key><dict><key>gpu_energy</key><integer>9</integer><key>freq_hz</key><real>inf</real></dict>",
            "<key>processor</key><dict><key>clusters</key><array><string>x</string><dict><key>name</key><string>P</string></dict><dict><key>freq_hz</key><real>1e9</real><key>name</key><string>E</string><key>cpus</key><array><dict><key>name</key><string>no</string><key>freq_hz</key><real>1</real></dict></array></dict></array><key>clusters</key><array><dict><key>name</key><string>S</string><key>freq_hz</key><integer>18446744073709551615</integer></dict></array></dict>",
            "<key>elapsed_ns</key><integer>-1</integer><key>gpu</key><dict><key>idle_ratio</key><real>0.5</real><key>idle_ratio</key><date>2026-11-20T10:00:01Z</date></dict>",
            "<key>thermal_pressure</key>\n\t<string>Heavy</string>\n",
        ];
        for body in bodies {
            let d = doc(body);
            let want = through_plist_tree(&d);
            assert!(want.is_some(), "{body}");
            assert_eq!(parse(&d).ok(), want, "{body}");
        }
        // Whitespace around a number is allowed (the plist crate refuses it).
        let d = doc("<key>processor</key><dict><key>cpu_power</key><real> 12.5\n</real></dict>");
        assert_eq!(parse(&d).unwrap().readings[0].power_mw, Some(12.5));
        // CDATA is text, as in any XML (and Apple's CFPropertyList); the plist crate drops it.
        let d = doc("<key>thermal_pressure</key><string>Nom<![CDATA[inal]]></string>");
        assert_eq!(
            parse(&d).unwrap().thermal_pressure.as_deref(),
            Some("Nominal")
        );
    }

    // What the plist tree refuses, the streaming parse refuses too, with the reason and place.
    #[test]
    fn malformed_documents_are_refused_with_the_place() {
        for (body, why) in [
            ("<key>a</key>", "without a value"),
            (
                "<key>a</key><key>b</key><string>x</string>",
                "two keys in a row",
            ),
            ("<string>x</string>", "without a <key>"),
            (
                "<key>processor</key><dict><key>b</key></array></dict>",
                "not a plist document",
            ),
            ("<key>a</key><foo>1</foo>", "not a plist element"),
            ("<key>a</key><string>x<b/></string>", "inside a value"),
            ("<key>a</key><string>x", "not a plist document"),
            (
                "<key>thermal_pressure</key><string>Heavy</string>stray",
                "text outside",
            ),
        ] {
            let d = doc(body);
            assert!(through_plist_tree(&d).is_none(), "{body}");
            let e = parse(&d).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("at byte"), "{body}: {e}");
        }
        let e = parse(&doc(
            "<key>processor</key><dict><key>cpu_power</key><real>12 W</real></dict>",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("processor.cpu_power: `12 W` is not a number"),
            "{e}"
        );
        for (body, path) in [
            (
                "<key>processor</key><dict><key>clusters</key><array><dict><key>freq_hz</key><real>fast</real></dict></array></dict>",
                "processor.clusters[].freq_hz: `fast`",
            ),
            (
                "<key>gpu</key><dict><key>freq_hz</key><integer>1.5</integer></dict>",
                "gpu.freq_hz: `1.5`",
            ),
        ] {
            let e = parse(&doc(body)).unwrap_err().to_string();
            assert!(e.contains(path), "{e}");
        }
        let two = [doc("<key>gpu</key><dict/>"), doc("<key>gpu</key><dict/>")].concat();
        let e = parse(&two).unwrap_err().to_string();
        assert!(e.contains("more than one top-level value"), "{e}");
        let e = parse(b"<plist><array><integer>1</integer></array></plist>").unwrap_err();
        assert!(
            e.to_string().contains("top level is not a dictionary"),
            "{e}"
        );
    }

    #[test]
    fn a_containers_content_ends_at_its_matching_end_tag() {
        let len = |rest: &str, name: &str| content_len(rest.as_bytes(), name.as_bytes());
        assert_eq!(len("</array>", "array"), Some(0));
        assert_eq!(len("<array><array/></array ></array>x", "array"), Some(24));
        assert_eq!(len("<arrayx></array>", "array"), Some(8));
        assert_eq!(
            len(
                "<!-- </array> --><![CDATA[</array>]]><?p </array>?></array>",
                "array"
            ),
            Some(51)
        );
        assert_eq!(len("<dict></dict></array>", "array"), Some(13));
        assert_eq!(len("<array></array>", "array"), None);
        assert_eq!(len("<!-- </array>", "array"), None);
        assert_eq!(len("<array", "array"), None);
        assert_eq!(len("", "dict"), None);
    }

    fn doc(body: &str) -> Vec<u8> {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<plist version=\"1.0\"><dict>{body}</dict></plist>\n"
        )
        .into_bytes()
    }

    #[test]
    fn units_are_converted() {
        let s = parse(&doc(
            "<key>elapsed_ns</key><integer>2000000000</integer>\
             <key>processor</key><dict>\
               <key>clusters</key><array><dict><key>name</key><string>P0-Cluster</string><key>freq_hz</key><real>3.2e9</real></dict></array>\
               <key>cpu_energy</key><integer>4000</integer><key>cpu_power</key><real>2000</real>\
               <key>gpu_energy</key><integer>100000</integer><key>gpu_power</key><real>50000</real>\
               <key>ane_energy</key><integer>0</integer><key>ane_power</key><real>0</real></dict>\
             <key>thermal_pressure</key><string>Heavy</string>\
             <key>gpu</key><dict><key>freq_hz</key><real>1398</real><key>idle_ratio</key><real>0.25</real></dict>",
        ))
        .unwrap();
        assert_eq!(s.elapsed_s, Some(2.0));
        assert_eq!(
            s.resolve(Component::Cpu),
            Some(Resolved {
                watts: Some(2.0),
                joules: Some(4.0)
            })
        );
        assert_eq!(
            s.resolve(Component::Gpu),
            Some(Resolved {
                watts: Some(50.0),
                joules: Some(100.0)
            })
        );
        assert_eq!(
            s.resolve(Component::Ane),
            Some(Resolved {
                watts: Some(0.0),
                joules: Some(0.0)
            })
        );
        assert_eq!(s.gpu_frequency_hz(), Some(1.398e9));
        assert_eq!(s.gpu_active_ratio(), Some(0.75));
        assert_eq!(s.clusters, vec![("P0-Cluster".to_string(), 3.2e9)]);
        assert_eq!(s.thermal_level(), Some(Ok(2)));
    }

    #[test]
    fn zero_cpu_power_beside_a_drawing_gpu_is_unknown() {
        let s = parse(&doc(
            "<key>elapsed_ns</key><integer>1000000000</integer><key>processor</key><dict>\
             <key>cpu_power</key><real>0</real><key>cpu_energy</key><integer>0</integer>\
             <key>gpu_power</key><real>7000</real></dict>",
        ))
        .unwrap();
        assert_eq!(s.resolve(Component::Cpu), None);
        // GPU energy derived from power over the window.
        assert_eq!(
            s.resolve(Component::Gpu),
            Some(Resolved {
                watts: Some(7.0),
                joules: Some(7.0)
            })
        );
        assert_eq!(
            s.resolve(Component::Ane),
            None,
            "ANE keys are missing altogether"
        );
    }

    #[test]
    fn zero_cpu_power_with_energy_uses_the_energy() {
        let s = parse(&doc(
            "<key>elapsed_ns</key><integer>500000000</integer><key>processor</key><dict>\
             <key>cpu_power</key><real>0</real><key>cpu_energy</key><integer>1500</integer></dict>",
        ))
        .unwrap();
        assert_eq!(
            s.resolve(Component::Cpu),
            Some(Resolved {
                watts: Some(3.0),
                joules: Some(1.5)
            })
        );
    }

    #[test]
    fn duplicate_keys_and_macos_27_down_ratio() {
        let s = parse(&doc(
            "<key>gpu</key><dict><key>idle_ratio</key><real>0.9</real><key>idle_ns</key><integer>1</integer>\
             <key>idle_ratio</key><real>0.5</real><key>down_ratio</key><real>0.25</real><key>idle_ns</key><integer>2</integer></dict>",
        ))
        .unwrap();
        assert_eq!(s.gpu_active_ratio(), Some(0.25));
    }

    #[test]
    fn leading_separator_is_skipped_and_bad_input_is_an_error() {
        let mut d = b"\0\n".to_vec();
        d.extend(doc("<key>thermal_pressure</key><string>Nominal</string>"));
        assert_eq!(parse(&d).unwrap().thermal_level(), Some(Ok(0)));
        assert!(matches!(parse(b"\0 \n"), Err(ParseError::Empty { .. })));
        let e = parse(b"hello world").unwrap_err().to_string();
        assert!(
            e.contains("powermetrics plist") && e.contains("not a plist"),
            "{e}"
        );
        assert!(parse(&doc("<key>x</key><integer>1</integer>")).is_err());
        let t = parse(&doc("<key>thermal_pressure</key><string>Warm</string>")).unwrap();
        assert_eq!(t.thermal_level(), Some(Err("Warm")));
    }
}
