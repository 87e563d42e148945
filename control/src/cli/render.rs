//! Rendering helpers shared by the commands: aligned tables, JSON, ages and port lists.

use anyhow::Result;

/// Prints rows as an aligned table with a header line.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i + 1 == headers.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        println!("{}", s.trim_end());
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
}

/// Prints a value as pretty JSON (`--json`).
pub fn print_json(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Published ports for a table cell: up to three, then a count.
pub fn published(mappings: &[String]) -> String {
    match mappings.len() {
        0 => "-".into(),
        1..=3 => mappings.join(","),
        n => format!("{},... ({n} ports)", mappings[..2].join(",")),
    }
}

/// An age for a table cell: seconds with a decimal under a minute, else minutes and seconds.
pub fn fmt_age(secs: f64) -> String {
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        format!("{}m{:02}s", (secs / 60.0) as u64, secs as u64 % 60)
    }
}
