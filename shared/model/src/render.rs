//! Any document as Markdown, as one self-contained print-ready HTML page
//! (what a governors' meeting gets) or as CSV, with every review, each
//! signature and the version each signed. Fields two schools disagree on
//! are printed with both values and who gave each, never one silently.

use crate::records::{Review, Signature};
use crate::schema::FieldType;
use crate::text::{capitalise, short, shorten};
use crate::view::{DocView, FieldView, RowView, TableView};
use crate::when::{format_time, when_text};

/// The value as printed: both values and who set each, for a conflict.
pub fn cell(field: &FieldView) -> String {
    if field.conflict.is_empty() {
        return field.text.clone();
    }
    let values: Vec<String> = field
        .conflict
        .iter()
        .map(|c| format!("“{}” ({})", c.text, c.who()))
        .collect();
    format!("UNRESOLVED: {}", values.join(" or "))
}

/// "a1b2c3d4" for a version: the first characters of each head.
pub fn version(heads: &[String]) -> String {
    if heads.is_empty() {
        return "(empty)".into();
    }
    heads
        .iter()
        .map(|h| short(h).to_string())
        .collect::<Vec<_>>()
        .join("+")
}

pub fn review_heading(review: &Review) -> String {
    let withdrawn = if review.withdrawn.is_some() {
        " (withdrawn)"
    } else {
        ""
    };
    format!(
        "Reviewed {} by {}{withdrawn}",
        when_text(&review.date),
        review.by
    )
}

/// "Withdrawn by Carole Clemens (Bank Road) on 2017-07-12 09:00 UTC:
/// recorded twice." for a withdrawn review.
pub fn withdrawal(review: &Review) -> Option<String> {
    let w = review.withdrawn.as_ref()?;
    Some(match &w.reason {
        Some(reason) => format!("Withdrawn by {} on {}: {reason}", w.by, format_time(w.at)),
        None => format!("Withdrawn by {} on {}.", w.by, format_time(w.at)),
    })
}

/// When a signature was given: the time it was made here, or the date on
/// paper it was transcribed from.
pub fn signed_when(signature: &Signature) -> String {
    match (signature.signed_at, signature.transcribed) {
        (Some(at), _) => format_time(at),
        (None, true) => format!("{} (transcribed from paper)", when_text(&signature.date)),
        (None, false) => when_text(&signature.date),
    }
}

fn has_nested(table: &TableView) -> bool {
    !table.table.tables.is_empty()
}

// ---------------------------------------------------------------------
// Markdown

/// Text as Markdown shows it, not as HTML a Markdown viewer would run:
/// Markdown passes raw HTML through, and partners write these words.
fn md_text(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;")
}

/// For a heading: one line.
fn md_line(s: &str) -> String {
    md_text(s).replace(['\r', '\n'], " ")
}

/// For inside a code span, where HTML is not run but a backtick would end
/// the span and a bar the table cell.
fn md_code(s: &str) -> String {
    s.replace(['`', '|', '\r', '\n'], "")
}

/// For a table cell: no column breaks, lines as `<br>`.
pub fn md_escape(s: &str) -> String {
    md_text(s).replace('|', "\\|").replace('\n', "<br>")
}

pub fn markdown(view: &DocView) -> String {
    let mut out = String::new();
    out.push_str(&format!("# {}\n\n", md_line(&view.title)));
    out.push_str(&format!("*{}*\n\n", view.kind.label()));
    for field in &view.fields {
        if field.text.is_empty() && field.conflict.is_empty() {
            continue;
        }
        if matches!(kind_of(view, field), Some(FieldType::Prose)) && field.conflict.is_empty() {
            out.push_str(&format!(
                "**{}**\n\n{}\n\n",
                field.label,
                md_text(&field.text)
            ));
        } else {
            out.push_str(&format!(
                "**{}:** {}\n\n",
                field.label,
                md_text(&cell(field))
            ));
        }
    }
    for table in &view.tables {
        md_table(table, 2, &mut out);
    }
    reviews(&view.reviews, &Markdown, &mut out);
    out
}

fn kind_of(view: &DocView, field: &FieldView) -> Option<FieldType> {
    view.kind.schema().field(field.key).map(|f| f.ty)
}

fn md_table(table: &TableView, level: usize, out: &mut String) {
    let rows = table.live();
    if rows.is_empty() {
        return;
    }
    let hashes = "#".repeat(level);
    out.push_str(&format!("{hashes} {}\n\n", table.label));
    if has_nested(table) {
        for row in rows {
            out.push_str(&format!("{hashes}# {}\n\n", md_line(&row.label())));
            for field in row.fields.iter().skip(1) {
                if field.text.is_empty() && field.conflict.is_empty() {
                    continue;
                }
                out.push_str(&format!(
                    "**{}:** {}\n\n",
                    field.label,
                    md_escape(&cell(field)).replace("<br>", "  \n")
                ));
            }
            for inner in &row.tables {
                md_table(inner, level + 2, out);
            }
        }
        return;
    }
    let labels: Vec<&str> = table.table.fields.iter().map(|f| f.label).collect();
    let cells: Vec<Vec<Cell>> = rows
        .iter()
        .map(|row| row.fields.iter().map(|f| Cell::Text(cell(f))).collect())
        .collect();
    out.push_str(&Markdown.table(&labels, &cells));
}

// ---------------------------------------------------------------------
// HTML

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn html_text(s: &str) -> String {
    esc(s).replace('\n', "<br>")
}

fn html_cell(field: &FieldView) -> String {
    if !field.conflict.is_empty() {
        return format!(
            r#"<span class="conflict">{}</span>"#,
            html_text(&cell(field))
        );
    }
    if field.key == "status" && !field.text.is_empty() {
        return format!(r#"<span class="status {0}">{0}</span>"#, esc(&field.text));
    }
    html_text(&field.text)
}

const STYLE: &str = r#"
body { font-family: "Helvetica Neue", Arial, sans-serif; font-size: 11pt; color: #111; margin: 2em; }
h1 { font-size: 18pt; margin-bottom: 0; }
.kind { color: #555; margin-top: 0.2em; }
h2 { font-size: 14pt; border-bottom: 2px solid #333; padding-bottom: 2px; margin-top: 1.6em; }
h3 { font-size: 12pt; margin-bottom: 0.3em; }
h4 { font-size: 11pt; margin: 0.8em 0 0.3em; }
table { border-collapse: collapse; width: 100%; margin: 0.4em 0 1em; }
th, td { border: 1px solid #888; padding: 4px 6px; vertical-align: top; text-align: left; }
th { background: #eee; }
dl { margin: 0.2em 0 0.6em; }
dt { font-weight: bold; }
dd { margin: 0 0 0.4em 0; }
.status { font-weight: bold; padding: 0 4px; border-radius: 3px; }
.status.red { background: #f4b6b6; } .status.amber { background: #f9d99a; }
.status.green { background: #b9e4b9; } .status.done { background: #cfd8e6; }
.conflict { background: #fff1a8; font-weight: bold; }
.version { font-family: monospace; }
section.row { page-break-inside: avoid; }
@media print { body { margin: 0; } @page { size: A4 landscape; margin: 12mm; } h2 { page-break-after: avoid; } }
"#;

pub fn html(view: &DocView) -> String {
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html lang=\"en-GB\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str(&format!(
        "<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        esc(&view.title)
    ));
    out.push_str(&format!(
        "<h1>{}</h1>\n<p class=\"kind\">{}</p>\n",
        esc(&view.title),
        esc(view.kind.label())
    ));
    let conflicts = view.conflicts();
    if !conflicts.is_empty() {
        out.push_str(&format!(
            "<p class=\"conflict\">{} field{} still hold{} two values that schools set at once; they are marked below.</p>\n",
            conflicts.len(),
            if conflicts.len() == 1 { "" } else { "s" },
            if conflicts.len() == 1 { "s" } else { "" }
        ));
    }
    out.push_str("<dl>\n");
    html_fields(&view.fields, &mut out);
    out.push_str("</dl>\n");
    for table in &view.tables {
        html_table(table, 2, &mut out);
    }
    reviews(&view.reviews, &Html, &mut out);
    out.push_str("</body>\n</html>\n");
    out
}

/// Each field that holds something, as a term and its value.
fn html_fields(fields: &[FieldView], out: &mut String) {
    for field in fields {
        if field.text.is_empty() && field.conflict.is_empty() {
            continue;
        }
        out.push_str(&format!(
            "<dt>{}</dt><dd>{}</dd>\n",
            esc(field.label),
            html_cell(field)
        ));
    }
}

fn html_table(table: &TableView, level: usize, out: &mut String) {
    let rows = table.live();
    if rows.is_empty() {
        return;
    }
    out.push_str(&format!("<h{level}>{}</h{level}>\n", esc(table.label)));
    if has_nested(table) {
        for row in rows {
            out.push_str(&format!(
                "<section class=\"row\">\n<h{0}>{1}</h{0}>\n<dl>\n",
                level + 1,
                esc(&row.label())
            ));
            html_fields(row.fields.get(1..).unwrap_or_default(), out);
            out.push_str("</dl>\n");
            for inner in &row.tables {
                html_table(inner, (level + 2).min(6), out);
            }
            out.push_str("</section>\n");
        }
        return;
    }
    out.push_str("<table>\n<tr>");
    for field in table.table.fields {
        out.push_str(&format!("<th>{}</th>", esc(field.label)));
    }
    out.push_str("</tr>\n");
    for row in rows {
        out.push_str("<tr>");
        for field in &row.fields {
            out.push_str(&format!("<td>{}</td>", html_cell(field)));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
}

// ---------------------------------------------------------------------
// Reviews and signatures, and the markup Markdown and HTML put around
// the same words

/// A table cell: words people wrote, or a version ("a1b2c3d4").
enum Cell {
    Text(String),
    Version(String),
}

/// What one format puts around the words of a page.
trait Markup {
    fn heading(&self, level: usize, text: &str) -> String;
    /// A paragraph of words people wrote.
    fn paragraph(&self, text: &str) -> String;
    /// A paragraph of words already marked up.
    fn marked(&self, markup: &str) -> String;
    fn version(&self, version: &str) -> String;
    /// A table under `headers` (this program's words, not escaped in
    /// Markdown).
    fn table(&self, headers: &[&str], rows: &[Vec<Cell>]) -> String;
}

struct Markdown;

impl Markup for Markdown {
    fn heading(&self, level: usize, text: &str) -> String {
        format!("{} {}\n\n", "#".repeat(level), md_line(text))
    }
    fn paragraph(&self, text: &str) -> String {
        self.marked(&md_text(text))
    }
    fn marked(&self, markup: &str) -> String {
        format!("{markup}\n\n")
    }
    fn version(&self, version: &str) -> String {
        format!("`{}`", md_code(version))
    }
    fn table(&self, headers: &[&str], rows: &[Vec<Cell>]) -> String {
        let mut out = format!("| {} |\n", headers.join(" | "));
        out.push_str(&format!("|{}\n", " --- |".repeat(headers.len())));
        for row in rows {
            let cells: Vec<String> = row
                .iter()
                .map(|c| match c {
                    Cell::Text(t) => md_escape(t),
                    Cell::Version(v) => self.version(v),
                })
                .collect();
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        out.push('\n');
        out
    }
}

struct Html;

impl Markup for Html {
    fn heading(&self, level: usize, text: &str) -> String {
        format!("<h{level}>{}</h{level}>\n", esc(text))
    }
    fn paragraph(&self, text: &str) -> String {
        self.marked(&html_text(text))
    }
    fn marked(&self, markup: &str) -> String {
        format!("<p>{markup}</p>\n")
    }
    fn version(&self, version: &str) -> String {
        format!("<span class=\"version\">{}</span>", esc(version))
    }
    fn table(&self, headers: &[&str], rows: &[Vec<Cell>]) -> String {
        let mut out = String::from("<table><tr>");
        for header in headers {
            out.push_str(&format!("<th>{}</th>", esc(header)));
        }
        out.push_str("</tr>\n");
        for row in rows {
            out.push_str("<tr>");
            for c in row {
                out.push_str(&match c {
                    Cell::Text(t) => format!("<td>{}</td>", esc(t)),
                    Cell::Version(v) => format!("<td class=\"version\">{}</td>", esc(v)),
                });
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</table>\n");
        out
    }
}

/// Every review, the version it reviewed and each signature with the
/// version signed: the same section in every printed format.
fn reviews(reviews: &[Review], markup: &impl Markup, out: &mut String) {
    if reviews.is_empty() {
        return;
    }
    out.push_str(&markup.heading(2, "Reviews and signatures"));
    for review in reviews {
        out.push_str(&markup.heading(3, &review_heading(review)));
        if let Some(withdrawn) = withdrawal(review) {
            out.push_str(&markup.marked(&withdrawn));
        }
        if let Some(note) = &review.note {
            out.push_str(&markup.paragraph(note));
        }
        out.push_str(&markup.marked(&format!(
            "Version reviewed: {}",
            markup.version(&version(&review.heads))
        )));
        if review.signatures.is_empty() {
            out.push_str(&markup.marked("Not signed yet."));
            continue;
        }
        let rows: Vec<Vec<Cell>> = review
            .signatures
            .iter()
            .map(|s| {
                vec![
                    Cell::Text(s.name.as_deref().unwrap_or("(name not recorded)").into()),
                    Cell::Text(capitalise(&s.role)),
                    Cell::Text(s.school.clone()),
                    Cell::Text(signed_when(s)),
                    Cell::Version(version(&s.heads)),
                ]
            })
            .collect();
        let headers = ["Signed by", "Role", "School", "Date", "Version signed"];
        out.push_str(&markup.table(&headers, &rows));
    }
}

// ---------------------------------------------------------------------
// CSV

/// One CSV cell. A spreadsheet runs a cell that starts with = + - @, a
/// tab or a carriage return as a formula, so such a cell (partners
/// write these words) starts with a quote mark, which shows it as text.
pub fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// One rectangular sheet: a line per document field, per row of every
/// table (with the row it sits in) and per signature, so a spreadsheet
/// can filter by the first column.
pub fn csv(view: &DocView) -> String {
    let mut columns: Vec<&'static str> = vec!["Section", "Within", "Id", "Field", "Value"];
    fn collect(tables: &'static [crate::schema::Table], columns: &mut Vec<&'static str>) {
        for table in tables {
            for field in table.fields {
                if !columns.contains(&field.label) {
                    columns.push(field.label);
                }
            }
            collect(table.tables, columns);
        }
    }
    collect(view.kind.schema().tables, &mut columns);
    for extra in [
        "Review date",
        "Reviewed by",
        "Version reviewed",
        "Signed by",
        "Role",
        "School",
        "Signed on",
        "Version signed",
        "Withdrawn",
    ] {
        if !columns.contains(&extra) {
            columns.push(extra);
        }
    }
    let mut lines: Vec<Vec<String>> = Vec::new();
    let line = |pairs: Vec<(&str, String)>| -> Vec<String> {
        columns
            .iter()
            .map(|c| {
                pairs
                    .iter()
                    .find(|(k, _)| k == c)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            })
            .collect()
    };
    lines.push(line(vec![
        ("Section", "Document".into()),
        ("Field", "Title".into()),
        ("Value", view.title.clone()),
    ]));
    for field in &view.fields {
        lines.push(line(vec![
            ("Section", "Document".into()),
            ("Field", field.label.into()),
            ("Value", cell(field)),
        ]));
    }
    fn rows(tables: &[TableView], within: &str, out: &mut Vec<Vec<(&'static str, String)>>) {
        for table in tables {
            for row in table.live() {
                let mut pairs: Vec<(&'static str, String)> = vec![
                    ("Section", table.label.to_string()),
                    ("Within", within.to_string()),
                    ("Id", row.id.clone()),
                ];
                for field in &row.fields {
                    pairs.push((field.label, cell(field)));
                }
                out.push(pairs);
                rows(&row.tables, &row.label(), out);
            }
        }
    }
    let mut table_rows = Vec::new();
    rows(&view.tables, "", &mut table_rows);
    for pairs in table_rows {
        lines.push(line(pairs));
    }
    for review in &view.reviews {
        let base = vec![
            ("Section", "Review".to_string()),
            ("Id", review.id.clone()),
            ("Review date", review.date.clone()),
            ("Reviewed by", review.by.clone()),
            ("Version reviewed", review.heads.join(" ")),
            ("Withdrawn", withdrawal(review).unwrap_or_default()),
        ];
        if review.signatures.is_empty() {
            lines.push(line(base.clone()));
        }
        for s in &review.signatures {
            let mut pairs = base.clone();
            pairs[0].1 = "Signature".into();
            pairs.extend([
                (
                    "Signed by",
                    s.name
                        .clone()
                        .unwrap_or_else(|| "(name not recorded)".into()),
                ),
                ("Role", s.role.clone()),
                ("School", s.school.clone()),
                ("Signed on", s.date.clone()),
                ("Version signed", s.heads.join(" ")),
            ]);
            lines.push(line(pairs));
        }
    }
    let mut out = String::new();
    out.push_str(
        &columns
            .iter()
            .map(|c| csv_field(c))
            .collect::<Vec<_>>()
            .join(","),
    );
    out.push_str("\r\n");
    for l in lines {
        out.push_str(&l.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    out
}

/// A row's one-line summary for terminal tables and change lists.
pub fn row_line(row: &RowView) -> String {
    row.fields
        .iter()
        .filter(|f| !f.text.is_empty() || !f.conflict.is_empty())
        .map(|f| format!("{}: {}", f.label, shorten(&cell(f), 40)))
        .collect::<Vec<_>>()
        .join(" · ")
}

/// When the review was recorded, for listings.
pub fn recorded(review: &Review) -> String {
    format!("recorded by {}", review.recorded_by)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::author::Author;
    use crate::plan_file::{self, PlanFile};
    use crate::rows::{self, Placement};
    use crate::{create, edit, read};
    use automerge::{ActorId, AutoCommit};

    const FIXTURE: &str = include_str!("../../../tests/fixtures/action-plan-000.json");

    fn imported() -> AutoCommit {
        let author = Author {
            school: "Bank Road Infant and Nursery School".into(),
            person: Some("Carole Clemens".into()),
            time: 1_499_760_000,
        };
        let plan = PlanFile::from_json(FIXTURE).unwrap();
        let mut doc = AutoCommit::new().with_actor(ActorId::random());
        plan_file::import_content(&mut doc, &plan, None, &author).unwrap();
        doc.commit();
        plan_file::import_reviews(&mut doc, &plan, &author).unwrap();
        doc.commit();
        doc
    }

    #[test]
    fn the_seed_plan_exports_back_as_it_was_imported() {
        let doc = imported();
        let view = read::read(&doc).unwrap();
        let exported = plan_file::export(&view).unwrap();
        let fixture = PlanFile::from_json(FIXTURE).unwrap().normalised();
        assert_eq!(exported.normalised(), fixture);
        assert!(!exported.reviews[0].heads.is_empty());
        assert!(
            exported
                .reviews
                .iter()
                .all(|r| r.heads == exported.reviews[0].heads),
            "every imported review signs the imported version"
        );
    }

    #[test]
    fn markdown_html_and_csv_carry_the_plan_and_its_signatures() {
        let mut doc = imported();
        let action = read::read(&doc).unwrap().live("areas")[0].live("actions")[0]
            .id
            .clone();
        edit::set_field(
            &mut doc,
            Some(&action),
            "status",
            "amber",
            &Author {
                school: "Bank Road".into(),
                person: None,
                time: 0,
            },
        )
        .unwrap();
        let view = read::read(&doc).unwrap();
        let md = markdown(&view);
        assert!(md.contains("# Collaboration action plan 2017-2018"), "{md}");
        assert!(md.contains("### Safeguarding"));
        assert!(md.contains("**Objectives:** 1, 2, 5, 10"));
        assert!(md.contains("| Peer review by head teachers"));
        assert!(md.contains("### Reviewed Tuesday 11 July 2017 by the HTs and members of the JCC"));
        assert!(md.contains("| Kevin Snow | Chair of governors | William Lilley Infant and Nursery School | Tuesday 11 July 2017 (transcribed from paper) | `"));
        let page = html(&view);
        assert!(page.starts_with("<!DOCTYPE html>") && page.contains("@media print"));
        assert!(page.contains("<span class=\"status amber\">amber</span>"));
        assert!(page.contains("<td>Andy Hitchcock</td>"));
        assert!(!page.contains("<script"), "self-contained, no scripts");
        let sheet = csv(&view);
        let header = sheet.lines().next().unwrap();
        assert!(header.starts_with("Section,Within,Id,Field,Value"));
        assert_eq!(
            sheet
                .lines()
                .filter(|l| l.starts_with("Signature,"))
                .count(),
            10
        );
        assert_eq!(
            sheet.lines().filter(|l| l.starts_with("Actions,")).count(),
            34
        );
        assert!(sheet.contains("Actions,Safeguarding,"));
    }

    /// The cells of one CSV line (quotes honoured).
    fn csv_cells(line: &str) -> Vec<String> {
        let (mut cells, mut cell, mut quoted) = (Vec::new(), String::new(), false);
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match (c, quoted) {
                ('"', true) if chars.peek() == Some(&'"') => {
                    cell.push('"');
                    chars.next();
                }
                ('"', _) => quoted = !quoted,
                (',', false) => cells.push(std::mem::take(&mut cell)),
                (c, _) => cell.push(c),
            }
        }
        cells.push(cell);
        cells
    }

    #[test]
    fn hostile_text_is_shown_as_text_in_html_markdown_and_csv() {
        let who = Author {
            school: "Bank Road, <Infant> & \"Nursery\"".into(),
            person: None,
            time: 0,
        };
        let mut doc = AutoCommit::new().with_actor(ActorId::random());
        let title = "<script>alert(\"x\")</script> & co";
        create::create(&mut doc, crate::Kind::ActionPlan, title, None, &who).unwrap();
        edit::set_field(
            &mut doc,
            None,
            "period",
            "=HYPERLINK(\"http://x\",\"y\")",
            &who,
        )
        .unwrap();
        edit::set_field(
            &mut doc,
            None,
            "overridingObjective",
            "<img src=x onerror=alert(1)> & \"quoted\", with commas",
            &who,
        )
        .unwrap();
        let area = rows::add_row(
            &mut doc,
            "areas",
            None,
            &[("name".into(), "+SUM(A1:A9)".into())],
            &Placement::End,
            &who,
        )
        .unwrap();
        rows::add_row(
            &mut doc,
            "actions",
            Some(&area),
            &[
                ("what".into(), "@cmd|' /C calc'!A0".into()),
                ("notes".into(), "-2+3, <b>then</b>\tmore".into()),
            ],
            &Placement::End,
            &who,
        )
        .unwrap();
        crate::review::record(
            &mut doc,
            "11 July 2017",
            "<i>the JCC</i>",
            Some("<iframe src=x></iframe> & notes"),
            crate::review::Given::Transcribed(&[crate::records::SignatureInput {
                name: Some("=1+1".into()),
                role: "headteacher".into(),
                school: "Bank Road, <Infant>".into(),
                date: None,
            }]),
            &who,
        )
        .unwrap();
        let view = read::read(&doc).unwrap();

        let page = html(&view);
        let md = markdown(&view);
        for (format, text) in [("html", &page), ("markdown", &md)] {
            for tag in ["<script", "<img", "<b>", "<i>", "<iframe"] {
                assert!(!text.contains(tag), "{format} runs {tag}: {text}");
            }
            assert!(text.contains("&lt;script"), "{format}: {text}");
            assert!(text.contains("&amp; co"), "{format}: {text}");
        }
        assert!(page.contains("&quot;quoted&quot;, with commas"), "{page}");
        assert!(
            md.contains("# &lt;script>alert(\"x\")&lt;/script> &amp; co"),
            "{md}"
        );
        assert!(
            md.contains("Reviewed Tuesday 11 July 2017 by &lt;i>the JCC&lt;/i>"),
            "{md}"
        );

        let sheet = csv(&view);
        let lines: Vec<&str> = sheet.split("\r\n").filter(|l| !l.is_empty()).collect();
        let width = csv_cells(lines[0]).len();
        let mut cells = Vec::new();
        for line in &lines {
            let line_cells = csv_cells(line);
            assert_eq!(line_cells.len(), width, "{line}");
            cells.extend(line_cells);
        }
        for cell in &cells {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "a spreadsheet would run {cell:?}"
            );
        }
        for shown in [
            "'=HYPERLINK(\"http://x\",\"y\")",
            "'+SUM(A1:A9)",
            "'@cmd|' /C calc'!A0",
            "'-2+3, <b>then</b>\tmore",
            "'=1+1",
            "Bank Road, <Infant>",
            title,
        ] {
            assert!(cells.iter().any(|c| c == shown), "{shown} in {cells:?}");
        }
    }
}
