//! Typed documents as a person reads them in a terminal: a document as
//! fields and aligned tables, conflicts with how to resolve them,
//! reviews, history and what changed since a review.

use partnerplan_model::diff::Difference;
use partnerplan_model::history::HistoryEntry;
use partnerplan_model::records::{Review, describe_signature};
use partnerplan_model::render;
use partnerplan_model::signing::Verification;
use partnerplan_model::text::{short, shorten};
use partnerplan_model::when::{format_time, when_text};
use partnerplan_model::{DocView, RowView, TableView};
use partnerplan_sync::DocumentId;

/// Prints one JSON value on a line, for `--json`.
pub(super) fn print_json(value: serde_json::Value) {
    println!("{value}");
}

pub(super) fn describe_conflict(c: &partnerplan_model::Conflict) -> String {
    let values: Vec<String> = c
        .values
        .iter()
        .map(|v| format!("“{}” set by {}", v.text, v.who()))
        .collect();
    let how = match &c.row {
        Some(row) => format!(
            "`partnerplan resolve <url> {} <value or school> --row {}`",
            c.field,
            short(row)
        ),
        None => format!("`partnerplan resolve <url> {} <value or school>`", c.field),
    };
    format!(
        "Conflict in {}: {}. Choose one with {how}.",
        c.place,
        values.join(" and ")
    )
}

/// Lays out rows as aligned columns, each at most `max` wide.
fn columns(headers: &[String], rows: &[Vec<String>], indent: &str) -> String {
    const MAX: usize = 44;
    let count = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| shorten(c, MAX)).collect())
        .collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate().take(count) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        let mut out = String::from(indent);
        for (i, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < cells.len() {
                let pad = widths[i] - cell.chars().count() + 2;
                out.push_str(&" ".repeat(pad));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(headers);
    out.push_str(&line(
        &widths.iter().map(|w| "─".repeat(*w)).collect::<Vec<_>>(),
    ));
    for row in &rows {
        out.push_str(&line(row));
    }
    out
}

fn row_state(row: &RowView) -> String {
    match (&row.removed, row.edited_after_removal) {
        (Some(r), true) => format!(
            "REMOVED by {} but edited by a partner at the same time: `row restore` brings it back",
            r.by
        ),
        (Some(r), false) => format!("removed by {}", r.by),
        _ => String::new(),
    }
}

fn terminal_table(table: &TableView, show_removed: bool, indent: &str, out: &mut String) {
    let rows: Vec<&RowView> = table
        .rows
        .iter()
        .filter(|r| show_removed || r.removed.is_none() || r.edited_after_removal)
        .collect();
    out.push_str(&format!("{indent}{}", table.label));
    if rows.is_empty() {
        out.push_str(": none yet\n");
        return;
    }
    out.push('\n');
    if !table.table.tables.is_empty() {
        for row in rows {
            out.push_str(&format!(
                "\n{indent}  ■ {}  [{} {}]{}\n",
                row.label(),
                table.row,
                short(&row.id),
                match row_state(row) {
                    s if s.is_empty() => String::new(),
                    s => format!("  ({s})"),
                }
            ));
            for field in row.fields.iter().skip(1) {
                if field.text.is_empty() && field.conflict.is_empty() {
                    continue;
                }
                let value = render::cell(field).replace('\n', &format!("\n{indent}      "));
                out.push_str(&format!("{indent}    {}: {value}\n", field.label));
            }
            for inner in &row.tables {
                terminal_table(inner, show_removed, &format!("{indent}    "), out);
            }
        }
        return;
    }
    let mut headers = vec!["Id".to_string()];
    headers.extend(table.table.fields.iter().map(|f| f.label.to_string()));
    let show_state = rows.iter().any(|r| r.removed.is_some());
    if show_state {
        headers.push("State".into());
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            let mut cells = vec![short(&row.id).to_string()];
            cells.extend(row.fields.iter().map(render::cell));
            if show_state {
                cells.push(row_state(row));
            }
            cells
        })
        .collect();
    out.push_str(&columns(&headers, &cells, &format!("{indent}  ")));
}

/// The document as a person reads it in a terminal.
pub fn terminal(id: &DocumentId, view: &DocView, show_removed: bool) -> String {
    let mut out = String::new();
    out.push_str(&format!("{}\n", view.title));
    out.push_str(&format!("{} · {}\n\n", view.kind.label(), id.url()));
    for field in &view.fields {
        if field.text.is_empty() && field.conflict.is_empty() {
            continue;
        }
        let value = render::cell(field).replace('\n', "\n  ");
        if value.contains('\n') || value.chars().count() > 60 {
            out.push_str(&format!("{}:\n  {value}\n", field.label));
        } else {
            out.push_str(&format!("{}: {value}\n", field.label));
        }
    }
    for table in &view.tables {
        out.push('\n');
        terminal_table(table, show_removed, "", &mut out);
    }
    if !view.reviews.is_empty() {
        out.push_str("\nReviews\n");
        for r in &view.reviews {
            out.push_str(&format!(
                "  {}  {} · version {} · {} signature{}\n",
                short(&r.id),
                render::review_heading(r),
                render::version(&r.heads),
                r.signatures.len(),
                if r.signatures.len() == 1 { "" } else { "s" }
            ));
        }
    }
    let conflicts = view.conflicts();
    if !conflicts.is_empty() {
        out.push_str("\nConflicts\n");
        for c in &conflicts {
            out.push_str(&format!("  {}\n", describe_conflict(c)));
        }
    }
    let removed = view.removed_while_edited();
    if !removed.is_empty() {
        out.push_str("\nRemoved while a partner was editing them\n");
        for (place, row) in removed {
            out.push_str(&format!(
                "  {place} [{}]: restore it with `partnerplan row restore <url> {}` to keep working on it.\n",
                short(&row.id),
                short(&row.id)
            ));
        }
    }
    out
}

/// A review with each signature and what checking it found.
pub(super) fn print_review(r: &Review, verifications: &[Verification]) {
    println!("{}  {}", short(&r.id), render::review_heading(r));
    if let Some(withdrawn) = render::withdrawal(r) {
        println!("    {withdrawn}");
    }
    if let Some(note) = &r.note {
        println!("    {note}");
    }
    println!(
        "    Version reviewed: {} · {}",
        render::version(&r.heads),
        render::recorded(r)
    );
    if r.signatures.is_empty() {
        println!("    Not signed yet.");
    }
    for (s, verification) in r.signatures.iter().zip(verifications) {
        println!(
            "    Signed: {} {} {} (version {})",
            describe_signature(s),
            if s.signed_at.is_some() { "at" } else { "on" },
            render::signed_when(s),
            render::version(&s.heads)
        );
        println!("      {}", verification.sentence(s));
    }
}

pub(super) fn print_history(entries: &[HistoryEntry]) {
    if entries.is_empty() {
        println!("No changes yet.");
        return;
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                format_time(e.time),
                e.who(),
                e.message
                    .clone()
                    .unwrap_or_else(|| "(no description)".into()),
            ]
        })
        .collect();
    print!(
        "{}",
        columns(&["When".into(), "Who".into(), "What".into()], &rows, "")
    );
}

pub(super) fn print_changes(r: &Review, differences: &[Difference], entries: &[HistoryEntry]) {
    println!(
        "Since the review of {} by {} (version {}):",
        when_text(&r.date),
        r.by,
        render::version(&r.heads)
    );
    if differences.is_empty() {
        println!("  Nothing has changed: the document reads as it did when it was signed.");
    }
    for d in differences {
        println!("  {}", d.describe());
    }
    if !entries.is_empty() {
        println!("\nChanges made since, by whom:");
        print_history(entries);
    }
}
