//! The admin pages, rendered with maud (every value escaped). They speak
//! to an office manager: names and dates, never ids, hashes or paths
//! where a name or date would do; every control has a label; every form
//! carries the page's secret token.

use std::collections::HashSet;

use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::activity::Connection;
use crate::backup::{civil, human_size};
use crate::directory::{
    DocumentSummary, Invite, PartnershipSummary, Role, SchoolSummary, StorageStatus,
};

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// "4 May 2026 at 10:02 UTC".
pub fn date_time(unix: i64) -> String {
    let (y, mo, d, h, mi, _) = civil(unix);
    format!(
        "{d} {} {y} at {h:02}:{mi:02} UTC",
        MONTHS[(mo as usize).clamp(1, 12) - 1]
    )
}

/// "just now", "3 minutes ago", "2 days ago".
pub fn ago(unix: i64, now: i64) -> String {
    let secs = (now - unix).max(0);
    let (n, unit) = match secs {
        s if s < 60 => return "just now".into(),
        s if s < 3600 => (s / 60, "minute"),
        s if s < 86_400 => (s / 3600, "hour"),
        s => (s / 86_400, "day"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

fn when(unix: i64, now: i64) -> Markup {
    html! { (date_time(unix)) " (" (ago(unix, now)) ")" }
}

/// Seconds since 1970 of a backup time as recorded (`2026-05-04T10:02:00Z`).
pub fn parse_iso(text: &str) -> Option<i64> {
    let text = text.trim().strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':').map(|p| p.parse::<i64>());
    let (h, mi, s) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    // Days from civil, Howard Hinnant's algorithm (the inverse of `civil`).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + s)
}

/// The frame of every admin page.
pub fn layout(title: &str, logged_in: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en-GB" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " – partnerplan relay" }
                link rel="stylesheet" href="/admin/assets/admin.css";
                link rel="icon" href="/admin/assets/icon.svg";
                script src="/admin/assets/admin.js" defer {}
            }
            body {
                a class="skip" href="#main" { "Skip to the content" }
                header class="top" {
                    a class="brand" href="/admin" { "partnerplan relay" }
                    span class="who" { "Admin" }
                    @if let Some(csrf) = logged_in {
                        form method="post" action="/admin/logout" class="inline" {
                            input type="hidden" name="csrf" value=(csrf);
                            button type="submit" class="secondary" { "Log out" }
                        }
                    }
                }
                main id="main" tabindex="-1" { (body) }
            }
        }
    }
}

fn notice(text: Option<&str>) -> Markup {
    html! {
        @if let Some(text) = text {
            div class="notice" role="status" { p { (text) } }
        }
    }
}

fn error_summary(error: Option<&(String, &str)>) -> Markup {
    html! {
        @if let Some((text, field)) = error {
            div class="error-summary" role="alert" tabindex="-1" id="error-summary" {
                h2 { "There is a problem" }
                p { a href={"#" (field)} { (text) } }
            }
        }
    }
}

fn role_words(role: Role) -> &'static str {
    match role {
        Role::Member => "Member: reads and writes",
        Role::Viewer => "Viewer: reads only",
    }
}

pub struct Overview<'a> {
    pub csrf: &'a str,
    pub logged_in: bool,
    pub notice: Option<&'a str>,
    pub error: Option<(String, &'static str)>,
    pub health: Result<(), String>,
    pub storage: &'a StorageStatus,
    pub backup_at: Option<i64>,
    pub failure_at: Option<i64>,
    pub connections: &'a [Connection],
    pub partnerships: &'a [PartnershipSummary],
    pub schools: &'a [SchoolSummary],
    pub now: i64,
}

pub fn overview(o: &Overview<'_>) -> Markup {
    let now = o.now;
    let body = html! {
        h1 { "Your relay" }
        (notice(o.notice))
        (error_summary(o.error.as_ref()))
        h2 { "Health" }
        dl class="summary" {
            dt { "Database" }
            dd {
                @match &o.health {
                    Ok(()) => span class="ok" { "Working: the relay can read and write it." },
                    Err(why) => span class="bad" { "Not working: " (why) },
                }
            }
            dt { "Stored" }
            dd { (o.storage.documents) " " (if o.storage.documents == 1 { "document" } else { "documents" }) ", " (human_size(o.storage.bytes)) " on disk" }
            dt { "Last backup" }
            dd {
                @match o.backup_at {
                    Some(at) => (when(at, now)),
                    None => { "None yet." },
                }
                @if let (Some(failed), Some(text)) = (o.failure_at, o.storage.last_backup_failure.as_deref()) {
                    @if o.backup_at.is_none_or(|at| failed > at) {
                        p class="bad" { "The last scheduled backup failed " (ago(failed, now)) ": " (text.split_once(' ').map(|(_, why)| why).unwrap_or(text)) }
                    }
                }
                form method="post" action="/admin/backup" {
                    input type="hidden" name="csrf" value=(o.csrf);
                    button type="submit" { "Back up now" }
                }
            }
        }

        h2 id="connected" { "Connected now" }
        @if o.connections.is_empty() {
            p { "No school is connected right now." }
        } @else {
            table {
                thead { tr { th scope="col" { "School" } th scope="col" { "Connected since" } th scope="col" { "Last message" } th scope="col" { "Client" } } }
                tbody {
                    @for c in o.connections {
                        tr { td { (c.school) } td { (when(c.opened_at, now)) } td { (ago(c.last_message, now)) } td { (c.client) } }
                    }
                }
            }
        }

        h2 id="partnerships" { "Partnerships" }
        @if o.partnerships.is_empty() {
            p { "There are no partnerships yet. Create the first below, then add its schools." }
        } @else {
            table {
                thead { tr { th scope="col" { "Partnership" } th scope="col" { "Schools" } th scope="col" { "Documents" } } }
                tbody {
                    @for p in o.partnerships {
                        tr { td { a href={"/admin/partnerships/" (p.id)} { (p.name) } } td { (p.schools) } td { (p.documents) } }
                    }
                }
            }
        }
        form method="post" action="/admin/partnerships" class="stack" {
            input type="hidden" name="csrf" value=(o.csrf);
            label for="partnership-name" { "Name of a new partnership" }
            input id="partnership-name" name="name" type="text" required autocomplete="off" maxlength=(crate::directory::NAME_CHARS);
            button type="submit" { "Create the partnership" }
        }

        h2 id="schools" { "Schools" }
        @if o.schools.is_empty() {
            p { "No schools yet. Open a partnership to add its schools." }
        } @else {
            table {
                thead { tr { th scope="col" { "School" } th scope="col" { "Partnerships" } th scope="col" { "Last synced" } th scope="col" { "Client" } } }
                tbody {
                    @for s in o.schools {
                        @let live = o.connections.iter().filter(|c| c.school_id == s.id).map(|c| c.last_message).max();
                        @let last = live.or(s.last_sync.as_ref().map(|l| l.at));
                        @let client = o.connections.iter().find(|c| c.school_id == s.id).map(|c| c.client.clone()).or_else(|| s.last_sync.as_ref().map(|l| l.client.clone()));
                        tr {
                            td { (s.name) }
                            td { @for (i, (p, role)) in s.partnerships.iter().enumerate() { @if i > 0 { ", " } (p) " (" (role.as_str()) ")" } }
                            td {
                                @if live.is_some() { "Connected now; " }
                                @match last { Some(at) => (when(at, now)), None => "Never" }
                            }
                            td { (client.unwrap_or_else(|| "–".into())) }
                        }
                    }
                }
            }
        }
    };
    layout("Your relay", o.logged_in.then_some(o.csrf), body)
}

pub struct PartnershipPage<'a> {
    pub csrf: &'a str,
    pub logged_in: bool,
    pub notice: Option<&'a str>,
    pub error: Option<(String, &'static str)>,
    pub partnership: &'a PartnershipSummary,
    pub schools: &'a [SchoolSummary],
    pub connected: &'a HashSet<String>,
    pub documents: &'a [(DocumentSummary, Option<String>)],
    /// More documents than shown.
    pub more_documents: usize,
    pub now: i64,
}

pub fn partnership(p: &PartnershipPage<'_>) -> Markup {
    let now = p.now;
    let name = &p.partnership.name;
    let body = html! {
        p class="back" { a href="/admin" { "Back to your relay" } }
        h1 { (name) }
        (notice(p.notice))
        (error_summary(p.error.as_ref()))
        h2 id="schools" { "Schools" }
        @if p.schools.is_empty() {
            p { "No schools yet. Add the first below." }
        } @else {
            table class="schools" {
                thead { tr { th scope="col" { "School" } th scope="col" { "Role" } th scope="col" { "Last synced" } th scope="col" { "Change" } } }
                tbody {
                    @for (i, s) in p.schools.iter().enumerate() {
                        @let role = s.partnerships.iter().find(|(n, _)| n == name).map(|(_, r)| *r).unwrap_or(Role::Member);
                        tr {
                            th scope="row" { (s.name) }
                            td { (role_words(role)) }
                            td {
                                @if p.connected.contains(&s.id) { "Connected now" }
                                @else { @match &s.last_sync { Some(l) => (when(l.at, now)), None => "Never" } }
                            }
                            td class="actions" {
                                form method="post" action="/admin/schools/role" class="inline" {
                                    input type="hidden" name="csrf" value=(p.csrf);
                                    input type="hidden" name="school" value=(s.name);
                                    input type="hidden" name="partnership" value=(p.partnership.id);
                                    label for={"role-" (i)} class="visually-hidden" { "Role of " (s.name) }
                                    select id={"role-" (i)} name="role" {
                                        option value="member" selected[role == Role::Member] { "Member" }
                                        option value="viewer" selected[role == Role::Viewer] { "Viewer" }
                                    }
                                    button type="submit" class="secondary" { "Change role" span class="visually-hidden" { " of " (s.name) } }
                                }
                                form method="post" action="/admin/schools/token" class="inline" {
                                    input type="hidden" name="csrf" value=(p.csrf);
                                    input type="hidden" name="school" value=(s.name);
                                    input type="hidden" name="partnership" value=(p.partnership.id);
                                    button type="submit" class="secondary" { "New invite" span class="visually-hidden" { " for " (s.name) } }
                                }
                                a href={"/admin/schools/remove?partnership=" (p.partnership.id) "&school=" (url_encode(&s.name))} { "Remove" span class="visually-hidden" { " " (s.name) } }
                            }
                        }
                    }
                }
            }
            p class="hint" { "A new invite gives the school a new token: the old one stops working at once, so give the school its new invite straight away." }
        }

        h2 id="add" { "Add a school" }
        form method="post" action="/admin/schools" class="stack" {
            input type="hidden" name="csrf" value=(p.csrf);
            input type="hidden" name="partnership" value=(p.partnership.id);
            label for="school-name" { "The school's name, as its partners know it" }
            input id="school-name" name="name" type="text" required autocomplete="off" maxlength=(crate::directory::NAME_CHARS);
            fieldset {
                legend { "What the school may do" }
                div class="radio" {
                    input id="role-member" type="radio" name="role" value="member" checked;
                    label for="role-member" { "Member: reads and writes the partnership's documents" }
                }
                div class="radio" {
                    input id="role-viewer" type="radio" name="role" value="viewer";
                    label for="role-viewer" { "Viewer: reads them, never writes (a governor, the local authority)" }
                }
            }
            button type="submit" { "Add the school" }
        }

        h2 id="documents" { "Documents" }
        @if p.documents.is_empty() {
            p { "No documents yet. They appear here when a school first shares one." }
        } @else {
            table class="documents" {
                thead { tr { th scope="col" { "Document" } th scope="col" { "Started by" } th scope="col" { "Last changed" } th scope="col" { "Size" } } }
                tbody {
                    @for (d, title) in p.documents {
                        tr {
                            td { (title.as_deref().unwrap_or("A document without a title")) }
                            td { (d.created_by.as_deref().unwrap_or("a school since removed")) ", " (date_time(d.created_at)) }
                            td { (when(d.changed_at.unwrap_or(d.created_at), now)) }
                            td { (human_size(d.bytes)) }
                        }
                    }
                }
            }
            @if p.more_documents > 0 {
                p class="hint" { "And " (p.more_documents) " more, changed longer ago: " code { "partnerplan-relay document list --partnership \"" (name) "\"" } " lists them all." }
            }
        }
    };
    layout(name, p.logged_in.then_some(p.csrf), body)
}

/// A new school's invite, or a new token: shown this once, never kept.
pub fn invite(
    invite: &Invite,
    line: &str,
    partnership_id: &str,
    what: &str,
    csrf: Option<&str>,
) -> Markup {
    let qr = qr_svg(line);
    let body = html! {
        p class="back" { a href={"/admin/partnerships/" (partnership_id)} { "Back to the partnership" } }
        h1 { "The invite for " (invite.school) }
        div class="notice" role="status" { p { (invite.school) " " (what) "." } }
        p { strong { "This invite is shown only this once." } " Give it to the school privately, for example read out over the phone or in a sealed letter: anyone who has it can read and change the partnership's documents as that school." }
        label for="invite-line" { "Invite" }
        textarea id="invite-line" class="invite" readonly rows="4" spellcheck="false" { (line) }
        p { button type="button" id="copy-invite" data-copy="invite-line" { "Copy the invite" } span id="copied" role="status" aria-live="polite" {} }
        p { "The school pastes it into partnerplan's join page, or runs " code { "partnerplan join '…'" } " with it. Or it scans this code:" }
        @if let Some(svg) = qr {
            figure class="qr" {
                div role="img" aria-label={"QR code of the invite for " (invite.school)} { (PreEscaped(svg)) }
                figcaption { "The same invite as a QR code." }
            }
        }
    };
    layout(&format!("Invite for {}", invite.school), csrf, body)
}

/// An invite's page asked for again: it was shown once and not kept.
pub fn invite_gone() -> Markup {
    let body = html! {
        p class="back" { a href="/admin" { "Back to your relay" } }
        h1 { "This invite has been shown already" }
        p { "An invite is shown only once, and the relay does not keep it, so it cannot be shown again. The school can still use it." }
        p { "If the school did not get it, give the school a new invite from its partnership's page (" strong { "New invite" } "): the one shown before then stops working." }
    };
    layout("Invite shown already", None, body)
}

fn qr_svg(text: &str) -> Option<String> {
    let code = qrcode::QrCode::with_error_correction_level(text, qrcode::EcLevel::M).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(240, 240)
        .quiet_zone(true)
        .build();
    // Only the <svg> element: the page is already HTML.
    let start = svg.find("<svg")?;
    Some(svg[start..].to_string())
}

pub struct RemovePage<'a> {
    pub csrf: &'a str,
    pub logged_in: bool,
    pub school: &'a str,
    pub partnership: &'a PartnershipSummary,
    /// Other partnerships the school is in.
    pub elsewhere: &'a [String],
}

pub fn remove(r: &RemovePage<'_>) -> Markup {
    let p = r.partnership;
    let body = html! {
        p class="back" { a href={"/admin/partnerships/" (p.id)} { "Back to " (p.name) } }
        h1 { "Remove " (r.school) "?" }
        p { "Its connections are cut at once. What it already has stays on its own computers; it receives nothing more." }
        form method="post" action="/admin/schools/remove" class="stack" {
            input type="hidden" name="csrf" value=(r.csrf);
            input type="hidden" name="school" value=(r.school);
            input type="hidden" name="partnership" value=(p.id);
            fieldset {
                legend { "Remove it from" }
                div class="radio" {
                    input id="from-partnership" type="radio" name="from" value="partnership" checked;
                    label for="from-partnership" { (p.name) " only" @if !r.elsewhere.is_empty() { " (it stays in " (r.elsewhere.join(", ")) ")" } }
                }
                div class="radio" {
                    input id="from-relay" type="radio" name="from" value="relay";
                    label for="from-relay" { "This relay altogether: its token stops working" }
                }
            }
            button type="submit" class="warning" { "Yes, remove " (r.school) }
        }
    };
    layout(
        &format!("Remove {}", r.school),
        r.logged_in.then_some(r.csrf),
        body,
    )
}

pub fn login(csrf: &str, error: Option<&str>) -> Markup {
    let body = html! {
        h1 { "Log in to the relay's admin pages" }
        @if let Some(error) = error {
            div class="error-summary" role="alert" tabindex="-1" id="error-summary" { h2 { "There is a problem" } p { a href="#password" { (error) } } }
        }
        form method="post" action="/admin/login" class="stack narrow" {
            input type="hidden" name="csrf" value=(csrf);
            label for="password" { "The admin password" }
            input id="password" name="password" type="password" required autocomplete="current-password";
            button type="submit" { "Log in" }
        }
        p class="hint" { "Whoever runs the relay set it with " code { "partnerplan-relay admin-password" } "." }
    };
    layout("Log in", None, body)
}

/// A page that says why something was refused, and what to do.
pub fn refusal(title: &str, sentence: &str) -> Markup {
    layout(title, None, html! { h1 { (title) } p { (sentence) } })
}

pub use partnerplan_sync::invite::percent_encode as url_encode;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_dates_and_ages() {
        assert_eq!(date_time(0), "1 January 1970 at 00:00 UTC");
        assert_eq!(parse_iso("2026-05-04T10:02:00Z"), Some(1_777_888_920));
        assert_eq!(date_time(1_777_888_920), "4 May 2026 at 10:02 UTC");
        assert_eq!(
            parse_iso(&crate::backup::iso_time(1_700_000_000)),
            Some(1_700_000_000)
        );
        assert_eq!(parse_iso("yesterday"), None);
        assert_eq!(ago(100, 110), "just now");
        assert_eq!(ago(0, 60), "1 minute ago");
        assert_eq!(ago(0, 7200), "2 hours ago");
        assert_eq!(ago(0, 3 * 86_400), "3 days ago");
    }

    #[test]
    fn an_invite_has_a_qr_code() {
        let svg = qr_svg("ws://127.0.0.1:7171/?partnership=abc&token=pp_123").unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("</svg>"));
    }
}
