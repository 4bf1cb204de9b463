//! `netstat -ib` output: 64-bit per-interface counters.
//!
//! Only the `<Link#N>` row of each interface is read (the address rows repeat the totals with
//! `-` placeholders). The Address column can be empty, so the counter columns are taken from the
//! right, by the header's column names (`-d` adds `Drop`, older systems print other extras).

use super::ParseError;

const WHAT: &str = "netstat -ib output";

/// Counters of one interface.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Interface {
    /// BSD name, e.g. `en2` (netstat's `*` mark for a down interface removed).
    pub name: String,
    /// Packets received.
    pub ipkts: Option<u64>,
    /// Input errors.
    pub ierrs: Option<u64>,
    /// Bytes received.
    pub ibytes: u64,
    /// Packets sent.
    pub opkts: Option<u64>,
    /// Output errors.
    pub oerrs: Option<u64>,
    /// Bytes sent.
    pub obytes: u64,
}

/// Parses the output; an interface appears once, from its `<Link#N>` row.
pub fn parse(text: &str) -> Result<Vec<Interface>, ParseError> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or(ParseError::Empty { what: WHAT })?;
    let columns: Vec<&str> = header.split_whitespace().collect();
    if columns.first() != Some(&"Name") {
        return Err(ParseError::line(
            WHAT,
            1,
            "expected a header starting with `Name`",
            header,
        ));
    }
    let address = columns
        .iter()
        .position(|c| *c == "Address")
        .ok_or_else(|| ParseError::line(WHAT, 1, "no Address column in the header", header))?;
    let counters = &columns[address + 1..];
    let col = |name: &str| counters.iter().position(|c| *c == name);
    let (ibytes, obytes) = match (col("Ibytes"), col("Obytes")) {
        (Some(i), Some(o)) => (i, o),
        _ => {
            return Err(ParseError::line(
                WHAT,
                1,
                "no Ibytes/Obytes columns (run netstat with -b)",
                header,
            ));
        }
    };
    let mut out: Vec<Interface> = Vec::new();
    for (i, line) in lines {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        if tokens.len() < 3 || !tokens[2].starts_with("<Link#") {
            continue;
        }
        if tokens.len() < 3 + counters.len() {
            return Err(ParseError::line(
                WHAT,
                i + 1,
                format!("expected {} counter columns", counters.len()),
                line,
            ));
        }
        let values = &tokens[tokens.len() - counters.len()..];
        let number = |idx: usize| -> Result<Option<u64>, ParseError> {
            match values[idx] {
                "-" => Ok(None),
                v => v.parse::<u64>().map(Some).map_err(|_| {
                    ParseError::line(
                        WHAT,
                        i + 1,
                        format!("{} is not a number", counters[idx]),
                        line,
                    )
                }),
            }
        };
        let opt =
            |name: &str| -> Result<Option<u64>, ParseError> { col(name).map_or(Ok(None), number) };
        let required = |idx: usize| -> Result<u64, ParseError> {
            number(idx)?.ok_or_else(|| {
                ParseError::line(WHAT, i + 1, format!("{} is missing", counters[idx]), line)
            })
        };
        let iface = Interface {
            name: tokens[0].trim_end_matches('*').to_string(),
            ipkts: opt("Ipkts")?,
            ierrs: opt("Ierrs")?,
            ibytes: required(ibytes)?,
            opkts: opt("Opkts")?,
            oerrs: opt("Oerrs")?,
            obytes: required(obytes)?,
        };
        if !out.iter().any(|o| o.name == iface.name) {
            out.push(iface);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_rows_only_and_empty_address() {
        let text = "Name  Mtu   Network       Address            Ipkts Ierrs     Ibytes    Opkts Oerrs     Obytes  Coll Drop\n\
            lo0   16384 <Link#1>                        869107     0  169411755   869107     0  169411755     0   0\n\
            lo0   16384 ::1/128     ::1                 869107     -  169411755   869107     -  169411755     -   -\n\
            en2*  1500  <Link#12>   8a:b7:b8:89:4f:67 30128622     3 23308376472 29417243     1 26102435913     0   0\n";
        let v = parse(text).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].name, "lo0");
        assert_eq!(v[0].ibytes, 169411755);
        assert_eq!(v[1].name, "en2");
        assert_eq!(v[1].ibytes, 23308376472, "64-bit counters are kept");
        assert_eq!(
            (v[1].ierrs, v[1].oerrs, v[1].opkts),
            (Some(3), Some(1), Some(29417243))
        );
    }

    #[test]
    fn bad_rows_are_errors_with_line_numbers() {
        assert!(matches!(parse(""), Err(ParseError::Empty { .. })));
        assert!(
            parse("Name Mtu Network Address Ipkts Ierrs Opkts Oerrs Coll\n")
                .unwrap_err()
                .to_string()
                .contains("-b")
        );
        let e = parse("Name Mtu Network Address Ipkts Ierrs Ibytes Opkts Oerrs Obytes Coll\nen2 1500 <Link#3> 1 0 x 1 0 5 0\n").unwrap_err();
        assert!(matches!(e, ParseError::Line { line: 2, .. }), "{e}");
        let e = parse("Name Mtu Network Address Ipkts Ierrs Ibytes Opkts Oerrs Obytes Coll\nen2 1500 <Link#3> 1 0\n").unwrap_err();
        assert!(e.to_string().contains("counter columns"), "{e}");
    }
}
