//! The relay's admin pages (`/admin`) and `/metrics`, for the office
//! manager or IT technician who runs the lead school's relay.
//!
//! They are served twice ([`Listener`]): on a listener of their own,
//! bound to a loopback address (`--admin-listen`, 127.0.0.1:7172), and on
//! the relay's public listener beside the WebSocket. Who may use them
//! ([`access`]): without a password, only a request to the admin
//! listener from the relay's own computer (a loopback address, a
//! loopback host name, no proxy in between); through the public listener
//! (and anything else) only after logging in with the admin password
//! (Argon2id hash in `meta`, set by `partnerplan-relay admin-password`),
//! and nobody at all while no password is set. A reverse proxy on the
//! relay's computer forwards to the public listener, so however it is
//! configured it can never make a remote request look local. `/metrics`
//! takes the same password as HTTP Basic or Bearer credentials, for
//! Prometheus; wrong passwords there count against the same limit as the
//! login page's.
//!
//! Every change is a form post that must come from the relay's own
//! origin (`Origin`, `Sec-Fetch-Site`) and carry the page's secret token,
//! and is logged with who made it, never with a token or password. Every
//! change goes through [`Directory`](crate::directory::Directory), the
//! same functions the command line calls.

pub mod pages;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Form, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::Markup;
use partnerplan_sync::clock::unix_seconds;
use partnerplan_web::guard::{constant_time_eq, new_secret, same_origin};
use partnerplan_web::password::{PasswordCheck, PasswordGate, Sessions};

use serde::Deserialize;

use crate::AppState;
use crate::directory::{Directory, DirectoryError, Role};
use crate::gate::Peer;
use crate::metrics;

/// The `meta` key holding the admin password's Argon2id hash.
pub const META_PASSWORD: &str = "admin.password";

const SESSION_COOKIE: &str = "pp_admin";

/// The most documents a partnership's page lists.
const DOCUMENTS_SHOWN: usize = 200;
/// Titles kept in memory, each cut to [`TITLE_CHARS`]: at most about
/// 2 MB, the oldest forgotten first.
const TITLES_KEPT: usize = 4096;
const TITLE_CHARS: usize = 120;
/// Notices waiting to be shown after a change (a sentence each).
const NOTICES_KEPT: usize = 64;
/// Invites made and waiting for the page the browser is sent to next
/// (a few KB each), and how long one waits before it is forgotten.
const INVITES_WAITING: usize = 16;
const INVITE_WAITS: Duration = Duration::from_secs(60);

/// Which of the relay's listeners a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The admin pages' own, on a loopback address: the only one where
    /// the relay's own computer goes without a password.
    Admin,
    /// The relay's public one, where schools connect (and where a reverse
    /// proxy on the relay's computer forwards to): always the password.
    Public,
}

/// A document's title as last read: its URL, the version it was read at
/// (last change, size), and the title, if it has one.
type Title = (String, (i64, u64), Option<String>);

/// The admin side's state, held in the relay's [`AppState`].
pub struct Admin {
    /// The token every form of the pages behind the guard carries.
    csrf: String,
    /// The login form's own token: the login page is shown to anyone who
    /// reaches the public listener, so it must not carry [`Admin::csrf`].
    login_csrf: String,
    sessions: Sessions,
    /// The password hash the open sessions were started under: when the
    /// password is changed or removed, every session ends.
    sessions_hash: Mutex<Option<String>>,
    /// Where the login page's and `/metrics`' passwords are checked.
    passwords: PasswordGate,
    /// Where the admin listener is, for the sentence that refuses the
    /// public one.
    local_address: String,
    /// A connection of its own on relay.sqlite, as the command line has.
    directory: Arc<Mutex<Directory>>,
    titles: Mutex<VecDeque<Title>>,
    notices: Mutex<VecDeque<(String, String)>>,
    /// Invite pages made by a change and not yet shown: the change
    /// answers with a redirect to `/admin/invites/{id}`, which shows the
    /// page once and forgets it, so reloading it (or going back to it)
    /// never makes another token.
    invites: Mutex<VecDeque<(String, Instant, String)>>,
    /// Served over TLS: cookies are `Secure`.
    secure: bool,
}

impl Admin {
    pub fn new(directory: Directory, secure: bool, local_address: String) -> Admin {
        Admin {
            csrf: new_secret(),
            login_csrf: new_secret(),
            sessions: Sessions::default(),
            sessions_hash: Mutex::new(None),
            passwords: PasswordGate::default(),
            local_address,
            directory: Arc::new(Mutex::new(directory)),
            titles: Mutex::new(VecDeque::new()),
            notices: Mutex::new(VecDeque::new()),
            invites: Mutex::new(VecDeque::new()),
            secure,
        }
    }

    /// Runs `f` on the admin's connection, off the async threads.
    async fn directory<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Directory) -> Result<T, DirectoryError> + Send + 'static,
    ) -> Result<T, DirectoryError> {
        let directory = self.directory.clone();
        tokio::task::spawn_blocking(move || {
            let mut directory = directory.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut directory)
        })
        .await
        .unwrap_or_else(|e| {
            Err(DirectoryError::Sqlite {
                path: Default::default(),
                detail: e.to_string(),
            })
        })
    }

    async fn password_hash(&self) -> Option<String> {
        self.directory(|d| d.meta(META_PASSWORD))
            .await
            .ok()
            .flatten()
            .filter(|hash| !hash.is_empty())
    }

    fn notice(&self, text: String) -> String {
        let id = new_secret()[..16].to_string();
        let mut notices = lock(&self.notices);
        if notices.len() >= NOTICES_KEPT {
            notices.pop_front();
        }
        notices.push_back((id.clone(), text));
        id
    }

    /// Keeps an invite's page for the one request that shows it; its id.
    fn keep_invite(&self, page: String) -> String {
        let id = new_secret();
        let mut invites = lock(&self.invites);
        invites.retain(|(_, made, _)| made.elapsed() < INVITE_WAITS);
        if invites.len() >= INVITES_WAITING {
            invites.pop_front();
        }
        invites.push_back((id.clone(), Instant::now(), page));
        id
    }

    fn take_invite(&self, id: &str) -> Option<String> {
        let mut invites = lock(&self.invites);
        invites.retain(|(_, made, _)| made.elapsed() < INVITE_WAITS);
        let i = invites
            .iter()
            .position(|(known, _, _)| constant_time_eq(known, id))?;
        invites.remove(i).map(|(_, _, page)| page)
    }

    fn take_notice(&self, id: Option<&str>) -> Option<String> {
        let id = id?;
        let mut notices = lock(&self.notices);
        let i = notices.iter().position(|(known, _)| known == id)?;
        notices.remove(i).map(|(_, text)| text)
    }

    /// Whether `session` is a login made under the current password
    /// (`hash`). A changed or removed password ends every session.
    fn logged_in(&self, session: Option<&str>, hash: Option<&str>) -> bool {
        {
            let mut under = lock(&self.sessions_hash);
            if under.as_deref() != hash {
                if under.is_some() {
                    self.sessions.end_all();
                }
                *under = hash.map(str::to_string);
            }
        }
        hash.is_some() && session.is_some_and(|s| self.sessions.valid(s))
    }

    /// Checks a password against the admin password's hash.
    async fn check_password(&self, given: String, hash: String) -> PasswordCheck {
        self.passwords.check(given, hash).await
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// How a request may use the admin pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// From the relay's own computer.
    Local,
    /// From elsewhere, with a password set: after logging in.
    Password,
    /// From elsewhere, and no password is set.
    Refused,
}

/// Decides [`Access`] from the listener a request came in on, the
/// connection's address (if known), the `Host` it named, whether a proxy
/// forwarded it, and whether a password is set. Only the admin listener
/// can be local: a reverse proxy on the relay's computer forwards to the
/// public one, and one that passes neither the original host nor
/// `X-Forwarded-For` (nginx's default) would otherwise make every remote
/// request look local. On the admin listener a loopback address alone is
/// not enough either: a page of another site whose name resolves to
/// 127.0.0.1 (DNS rebinding) also arrives from loopback, but names
/// another host.
pub fn access(
    listener: Listener,
    peer: Option<IpAddr>,
    host: &str,
    forwarded: bool,
    password_set: bool,
) -> Access {
    if listener == Listener::Admin
        && peer.is_some_and(|ip| ip.is_loopback())
        && !forwarded
        && is_loopback_host(host)
    {
        Access::Local
    } else if password_set {
        Access::Password
    } else {
        Access::Refused
    }
}

/// `127.0.0.1:7171`, `localhost:7171`, `[::1]:7171`.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<IpAddr>()
            .is_ok_and(|ip: IpAddr| ip.is_loopback())
}

/// Who made a change, for the log: never a secret.
#[derive(Debug, Clone)]
enum Who {
    Local,
    LoggedIn(From),
    /// At the login page, not logged in yet.
    Visitor(From),
}

/// Where a request came from, as far as the relay can tell.
#[derive(Debug, Clone, Copy)]
struct From(Option<IpAddr>);

impl std::fmt::Display for From {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(ip) => write!(f, "{ip}"),
            None => write!(f, "an address the relay does not know"),
        }
    }
}

impl std::fmt::Display for Who {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Who::Local => write!(f, "someone on the relay's own computer"),
            Who::LoggedIn(from) => write!(f, "the admin, logged in from {from}"),
            Who::Visitor(from) => write!(f, "someone at {from}"),
        }
    }
}

type Shared = Arc<AppState>;

/// `/admin/…` and `/metrics` as served on `listener`, behind [`guard`].
pub fn router(state: Shared, listener: Listener) -> Router<Shared> {
    Router::new()
        .route("/admin", get(overview))
        .route("/admin/", get(|| async { Redirect::to("/admin") }))
        .route("/admin/login", get(login_form).post(login))
        .route("/admin/logout", post(logout))
        .route("/admin/partnerships", post(create_partnership))
        .route("/admin/partnerships/{id}", get(partnership))
        .route("/admin/schools", post(add_school))
        .route("/admin/schools/token", post(rotate_token))
        .route("/admin/backup", post(backup_now))
        .route("/admin/invites/{id}", get(show_invite))
        .route("/admin/schools/role", post(change_role))
        .route(
            "/admin/schools/remove",
            get(remove_form).post(remove_school),
        )
        .route("/admin/assets/admin.css", get(css))
        .route("/admin/assets/admin.js", get(js))
        .route("/admin/assets/icon.svg", get(icon))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state((state, listener), guard))
}

fn header_text(headers: &HeaderMap, name: impl axum::http::header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The address a request comes from, as far as the relay can tell, for
/// the log. `X-Forwarded-For` is believed only from a proxy on the relay's
/// own computer, and only its last hop (the one that proxy added): the
/// hops before it are whatever the client sent.
fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
    if !peer.is_some_and(|ip| ip.is_loopback()) {
        return peer;
    }
    header_text(headers, "x-forwarded-for")
        .and_then(|v| v.rsplit(',').next())
        .and_then(|v| v.trim().parse().ok())
        .or(peer)
}

fn forwarded(headers: &HeaderMap) -> bool {
    [
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-real-ip",
    ]
    .iter()
    .any(|h| headers.contains_key(*h))
}

fn session(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
}

/// The password in `Authorization: Basic …` (any user name) or
/// `Authorization: Bearer …`, for Prometheus.
fn credentials(headers: &HeaderMap) -> Option<String> {
    let value = header_text(headers, header::AUTHORIZATION)?;
    if let Some(token) = value.strip_prefix("Bearer ") {
        return Some(token.trim().to_string());
    }
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64_decode(encoded.trim())?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':')
        .map(|(_, password)| password.to_string())
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.trim_end_matches('=').bytes() {
        let v = ALPHABET.iter().position(|a| *a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Every admin request: who may come in, and that a change comes from
/// the relay's own pages.
async fn guard(
    State((state, listener)): State<(Shared, Listener)>,
    mut request: Request,
    next: Next,
) -> Response {
    let admin = &state.admin;
    let peer = request
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .map(|ConnectInfo(Peer(addr))| addr.ip());
    let headers = request.headers();
    let host = header_text(headers, header::HOST).unwrap_or("").to_string();
    let path = request.uri().path().to_string();
    let changes = !matches!(*request.method(), Method::GET | Method::HEAD);
    if changes
        && !same_origin(
            header_text(headers, header::ORIGIN),
            header_text(headers, "sec-fetch-site"),
            &host,
        )
    {
        tracing::warn!(from = %From(client_ip(peer, headers)), %path, "refused an admin change sent from another web page");
        return page(
            StatusCode::FORBIDDEN,
            pages::refusal(
                "Not changed",
                "Changes can only be made from the relay's own admin pages. Open them yourself and make the change there.",
            ),
        );
    }
    let hash = admin.password_hash().await;
    let from = From(client_ip(peer, headers));
    let logged_in = admin.logged_in(session(headers), hash.as_deref());
    let who = match access(listener, peer, &host, forwarded(headers), hash.is_some()) {
        Access::Local => Who::Local,
        Access::Refused => {
            tracing::warn!(%from, %path, ?listener, "refused an admin request: it did not come to the admin listener from the relay's own computer (its listener, address, host name or a proxy say so), and no admin password is set");
            let text = match listener {
                Listener::Public => format!(
                    "The relay's admin pages open without a password only on the computer the relay runs on, at {}. To use them from another computer, set an admin password on the relay's computer with `partnerplan-relay admin-password`, then log in here.",
                    admin.local_address
                ),
                Listener::Admin => "The relay's admin pages open only on the computer the relay runs on. To use them from another computer, set an admin password on the relay's computer with `partnerplan-relay admin-password`, then log in.".to_string(),
            };
            return page(
                StatusCode::FORBIDDEN,
                pages::refusal("Only on the relay's own computer", &text),
            );
        }
        Access::Password => {
            let hash = hash.unwrap_or_default();
            if logged_in {
                Who::LoggedIn(from)
            } else if path == "/metrics" {
                let check = match credentials(headers) {
                    Some(given) => admin.check_password(given, hash).await,
                    None => PasswordCheck::Wrong,
                };
                match check {
                    PasswordCheck::Right => {}
                    PasswordCheck::Wrong => {
                        if header_text(headers, header::AUTHORIZATION).is_some() {
                            tracing::warn!(%from, "a wrong admin password was given for /metrics");
                        }
                        return (
                            StatusCode::UNAUTHORIZED,
                            [(
                                header::WWW_AUTHENTICATE,
                                "Basic realm=\"partnerplan relay\"",
                            )],
                            "The relay's metrics need the admin password (HTTP Basic or Bearer).\n",
                        )
                            .into_response();
                    }
                    PasswordCheck::TooMany => {
                        tracing::warn!(%from, "refused /metrics: too many wrong admin passwords in the last minute");
                        return (
                            StatusCode::TOO_MANY_REQUESTS,
                            [(header::RETRY_AFTER, "60")],
                            "Too many wrong admin passwords were tried in the last minute. Wait a minute, then try again.\n",
                        )
                            .into_response();
                    }
                }
                Who::LoggedIn(from)
            } else if path == "/admin/login" || path.starts_with("/admin/assets/") {
                Who::Visitor(from)
            } else if changes {
                return page(
                    StatusCode::UNAUTHORIZED,
                    pages::refusal(
                        "Log in again",
                        "Your login has ended, so nothing was changed. Log in again, then make the change.",
                    ),
                );
            } else {
                return Redirect::to("/admin/login").into_response();
            }
        }
    };
    request.extensions_mut().insert(who);
    let mut response = next.run(request).await;
    // Admin pages are never kept by browsers or proxies (an invite is on
    // one), nor shown inside another site's frame, and their addresses
    // go to no other site.
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // `same-origin`, not `no-referrer`: with the latter, browsers send
    // `Origin: null` on the pages' own form posts, which are then refused.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

fn page(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

/// A form's token must be the page's: the refusal if it is not.
fn token_refused(state: &AppState, sent: &str) -> Option<Response> {
    wrong_token(&state.admin.csrf, sent)
}

fn wrong_token(expected: &str, sent: &str) -> Option<Response> {
    if constant_time_eq(sent, expected) {
        None
    } else {
        Some(page(
            StatusCode::FORBIDDEN,
            pages::refusal(
                "Not changed",
                "This change did not come from one of the relay's admin pages, so it was not made. Go back, reload the page and try again.",
            ),
        ))
    }
}

fn failure(error: &DirectoryError) -> Response {
    tracing::error!(%error, "an admin page could not read the register");
    page(
        StatusCode::INTERNAL_SERVER_ERROR,
        pages::refusal(
            "Something went wrong",
            &format!(
                "The relay could not read its register: {error} Try again in a moment; if it keeps happening, look at the relay's log."
            ),
        ),
    )
}

fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn logged_in(who: &Who) -> bool {
    matches!(who, Who::LoggedIn(_))
}

#[derive(Deserialize)]
struct NoticeQuery {
    notice: Option<String>,
}

async fn overview(
    State(state): State<Shared>,
    axum::Extension(who): axum::Extension<Who>,
    Query(q): Query<NoticeQuery>,
) -> Response {
    let notice = state.admin.take_notice(q.notice.as_deref());
    render_overview(&state, &who, notice, None, StatusCode::OK).await
}

async fn render_overview(
    state: &AppState,
    who: &Who,
    notice: Option<String>,
    error: Option<(String, &'static str)>,
    status: StatusCode,
) -> Response {
    let read = state
        .admin
        .directory(|d| Ok((d.storage()?, d.partnerships()?, d.schools(None)?)))
        .await;
    let (storage, partnerships, schools) = match read {
        Ok(read) => read,
        Err(error) => return failure(&error),
    };
    let health = crate::database_health(&state.engine).await;
    let connections = state.activity.connections();
    let overview = pages::Overview {
        csrf: &state.admin.csrf,
        logged_in: logged_in(who),
        notice: notice.as_deref(),
        error,
        health,
        backup_at: storage.last_backup.as_deref().and_then(pages::parse_iso),
        failure_at: storage
            .last_backup_failure
            .as_deref()
            .and_then(|f| f.split_whitespace().next())
            .and_then(pages::parse_iso),
        storage: &storage,
        connections: &connections,
        partnerships: &partnerships,
        schools: &schools,
        now: unix_seconds(),
    };
    page(status, pages::overview(&overview))
}

async fn partnership(
    State(state): State<Shared>,
    axum::Extension(who): axum::Extension<Who>,
    Path(id): Path<String>,
    Query(q): Query<NoticeQuery>,
) -> Response {
    let notice = state.admin.take_notice(q.notice.as_deref());
    render_partnership(&state, &who, &id, notice, None, StatusCode::OK).await
}

async fn render_partnership(
    state: &AppState,
    who: &Who,
    id: &str,
    notice: Option<String>,
    error: Option<(String, &'static str)>,
    status: StatusCode,
) -> Response {
    let wanted = id.to_string();
    let read = state
        .admin
        .directory(move |d| {
            let found = d.partnerships()?.into_iter().find(|p| p.id == wanted);
            let Some(found) = found else {
                return Ok(None);
            };
            let schools = d.schools(Some(&found.id))?;
            let documents = d.documents(Some(&found.id))?;
            Ok(Some((found, schools, documents)))
        })
        .await;
    let (found, schools, mut documents) = match read {
        Ok(Some(read)) => read,
        Ok(None) => {
            return page(
                StatusCode::NOT_FOUND,
                pages::refusal(
                    "No such partnership",
                    "That partnership is not on this relay (it may have been a link from before a restore). Go back to the relay's page to see its partnerships.",
                ),
            );
        }
        Err(error) => return failure(&error),
    };
    let more = documents.len().saturating_sub(DOCUMENTS_SHOWN);
    documents.truncate(DOCUMENTS_SHOWN);
    let documents = titled(state, documents).await;
    let connected: HashSet<String> = state
        .activity
        .connections()
        .into_iter()
        .map(|c| c.school_id)
        .collect();
    let view = pages::PartnershipPage {
        csrf: &state.admin.csrf,
        logged_in: logged_in(who),
        notice: notice.as_deref(),
        error,
        partnership: &found,
        schools: &schools,
        connected: &connected,
        documents: &documents,
        more_documents: more,
        now: unix_seconds(),
    };
    page(status, pages::partnership(&view))
}

/// Each document with its title, read once per version and kept in a
/// bounded cache.
async fn titled(
    state: &AppState,
    documents: Vec<crate::directory::DocumentSummary>,
) -> Vec<(crate::directory::DocumentSummary, Option<String>)> {
    let version =
        |d: &crate::directory::DocumentSummary| (d.changed_at.unwrap_or(d.created_at), d.bytes);
    let mut known: HashMap<String, Option<String>> = HashMap::new();
    let mut missing = Vec::new();
    {
        let titles = lock(&state.admin.titles);
        for d in &documents {
            match titles
                .iter()
                .find(|(url, v, _)| *url == d.url && *v == version(d))
            {
                Some((_, _, title)) => {
                    known.insert(d.url.clone(), title.clone());
                }
                None => missing.push((d.url.clone(), version(d))),
            }
        }
    }
    if !missing.is_empty() {
        let read = state
            .admin
            .directory(move |d| {
                let mut out = Vec::new();
                for (url, version) in missing {
                    let title = d
                        .document_title(&url)?
                        .map(|t| t.chars().take(TITLE_CHARS).collect::<String>());
                    out.push((url, version, title));
                }
                Ok(out)
            })
            .await
            .unwrap_or_default();
        let mut titles = lock(&state.admin.titles);
        for (url, version, title) in read {
            titles.retain(|(known, _, _)| *known != url);
            if titles.len() >= TITLES_KEPT {
                titles.pop_front();
            }
            titles.push_back((url.clone(), version, title.clone()));
            known.insert(url, title);
        }
    }
    documents
        .into_iter()
        .map(|d| {
            let title = known.get(&d.url).cloned().flatten();
            (d, title)
        })
        .collect()
}

#[derive(Deserialize)]
struct LoginInput {
    csrf: String,
    password: String,
}

async fn login_form(
    State(state): State<Shared>,
    axum::Extension(who): axum::Extension<Who>,
) -> Response {
    if matches!(who, Who::Local) || state.admin.password_hash().await.is_none() {
        return Redirect::to("/admin").into_response();
    }
    page(StatusCode::OK, pages::login(&state.admin.login_csrf, None))
}

async fn login(
    State(state): State<Shared>,
    axum::Extension(who): axum::Extension<Who>,
    Form(input): Form<LoginInput>,
) -> Response {
    let admin = &state.admin;
    if let Some(refused) = wrong_token(&admin.login_csrf, &input.csrf) {
        return refused;
    }
    let Some(hash) = admin.password_hash().await else {
        return Redirect::to("/admin").into_response();
    };
    match admin.check_password(input.password, hash).await {
        PasswordCheck::Right => {}
        PasswordCheck::TooMany => {
            tracing::warn!(who = %who, "refused a login: too many wrong passwords in the last minute");
            return page(
                StatusCode::TOO_MANY_REQUESTS,
                pages::login(
                    &admin.login_csrf,
                    Some(
                        "Too many wrong passwords were tried in the last minute. Wait a minute, then try again.",
                    ),
                ),
            );
        }
        PasswordCheck::Wrong => {
            tracing::warn!(who = %who, "a wrong admin password was given");
            return page(
                StatusCode::UNAUTHORIZED,
                pages::login(
                    &admin.login_csrf,
                    Some(
                        "That is not the admin password. Try again, or ask whoever runs the relay.",
                    ),
                ),
            );
        }
    }
    let session = admin.sessions.start();
    tracing::info!(who = %who, "logged in to the admin pages");
    let secure = if admin.secure { "; Secure" } else { "" };
    (
        [(
            header::SET_COOKIE,
            format!("{SESSION_COOKIE}={session}; HttpOnly; SameSite=Strict; Path=/{secure}"),
        )],
        Redirect::to("/admin"),
    )
        .into_response()
}

#[derive(Deserialize)]
struct TokenOnly {
    csrf: String,
}

async fn logout(
    State(state): State<Shared>,
    headers: HeaderMap,
    Form(input): Form<TokenOnly>,
) -> Response {
    if let Some(refused) = token_refused(&state, &input.csrf) {
        return refused;
    }
    if let Some(s) = session(&headers) {
        state.admin.sessions.end(s);
    }
    (
        [(
            header::SET_COOKIE,
            format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
        )],
        Redirect::to("/admin/login"),
    )
        .into_response()
}

#[derive(Deserialize)]
struct NameInput {
    csrf: String,
    name: String,
}

async fn create_partnership(
    State(state): State<Shared>,
    axum::Extension(who): axum::Extension<Who>,
    Form(input): Form<NameInput>,
) -> Response {
    if let Some(refused) = token_refused(&state, &input.csrf) {
        return refused;
    }
    let name = input.name.clone();
    match state
        .admin
        .directory(move |d| d.create_partnership(&name))
        .await
    {
        Ok(created) => {
            tracing::info!(who = %who, action = "create partnership", partnership = %created.name, "admin action");
            let notice = state.admin.notice(format!(
                "{} is created. Add its schools below.",
                created.name
            ));
            Redirect::to(&format!(
                "/admin/partnerships/{}?notice={notice}",
                created.id
            ))
            .into_response()
        }
        Err(DirectoryError::Sqlite { .. }) | Err(DirectoryError::Store(_)) => {
            failure_of(&state, &who, "create partnership").await
        }
        Err(error) => {
            render_overview(
                &state,
                &who,
                None,
                Some((sentence(&error.to_string()), "partnership-name")),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

async fn failure_of(state: &AppState, who: &Who, action: &str) -> Response {
    tracing::error!(who = %who, action, "an admin action failed");
    render_overview(
        state,
        who,
        None,
        Some((
            "The relay could not save that change. Nothing was changed; try again in a moment, and if it keeps happening, look at the relay's log.".into(),
            "main",
        )),
        StatusCode::INTERNAL_SERVER_ERROR,
    )
    .await
}

#[derive(Deserialize)]
struct AddInput {
    csrf: String,
    partnership: String,
    name: String,
    role: String,
}

fn role_of(text: &str) -> Role {
    if text == "viewer" {
        Role::Viewer
    } else {
        Role::Member
    }
}

async fn add_school(
    State(state): State<Shared>,
    axum::Extension(who): axum::Extension<Who>,
    Form(input): Form<AddInput>,
) -> Response {
    if let Some(refused) = token_refused(&state, &input.csrf) {
        return refused;
    }
    let role = role_of(&input.role);
    let (partnership, name) = (input.partnership.clone(), input.name.clone());
    let added = state
        .admin
        .directory(move |d| {
            let url = d.relay_url(None)?;
            d.add_school(&partnership, &name, role, &url)
        })
        .await;
    match added {
        Ok((invite, school, _)) => {
            tracing::info!(who = %who, action = "add school", school = %school, partnership = %input.partnership, role = role.as_str(), "admin action");
            state.engine.refresh_register().await;
            match invite {
                Some(invite) => invite_page(&state, &who, &invite, &input.partnership, "is added"),
                None => {
                    let notice = state.admin.notice(format!(
                        "{school} is now a {} of this partnership. It already has an invite for this relay and uses it here too.",
                        role.as_str()
                    ));
                    Redirect::to(&format!(
                        "/admin/partnerships/{}?notice={notice}",
                        input.partnership
                    ))
                    .into_response()
                }
            }
        }
        Err(DirectoryError::Sqlite { .. }) | Err(DirectoryError::Store(_)) => {
            failure_of(&state, &who, "add school").await
        }
        Err(error) => {
            render_partnership(
                &state,
                &who,
                &input.partnership,
                None,
                Some((sentence(&error.to_string()), "school-name")),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

/// Answers a change that made an invite: the page is kept for the next
/// request only, and the browser is sent there, so the page in its
/// history is a GET that shows the invite once and never makes another.
fn invite_page(
    state: &AppState,
    who: &Who,
    invite: &crate::directory::Invite,
    partnership: &str,
    what: &str,
) -> Response {
    let line = invite.line();
    let markup = pages::invite(
        invite,
        &line,
        partnership,
        what,
        logged_in(who).then_some(state.admin.csrf.as_str()),
    );
    let id = state.admin.keep_invite(markup.into_string());
    Redirect::to(&format!("/admin/invites/{id}")).into_response()
}

async fn show_invite(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    match state.admin.take_invite(&id) {
        Some(page) => (StatusCode::OK, Html(page)).into_response(),
        None => page(StatusCode::GONE, pages::invite_gone()),
    }
}

#[derive(Deserialize)]
struct SchoolInput {
    csrf: String,
    school: String,
    partnership: String,
}

async fn rotate_token(
    State(state): State<Shared>,
    axum::Extension(who): axum::Extension<Who>,
    Form(input): Form<SchoolInput>,
) -> Response {
    if let Some(refused) = token_refused(&state, &input.csrf) {
        return refused;
    }
    let school = input.school.clone();
    let rotated = state
        .admin
        .directory(move |d| {
            let url = d.relay_url(None)?;
            d.rotate_token(&school, &url)
        })
        .await;
    match rotated {
        Ok(invite) => {
            tracing::info!(who = %who, action = "rotate token", school = %invite.school, "admin action");
            state.engine.refresh_register().await;
            invite_page(
                &state,
                &who,
                &invite,
                &input.partnership,
                "has a new token: the old one no longer works",
            )
        }
        Err(error) => back_with(&state, &input.partnership, &error.to_string()),
    }
}

/// "Back up now": a backup into the scheduled backups' folder (the data
/// folder's `backups` without a schedule), made and checked as the
/// scheduled ones are, then the overview saying where it went.
async fn backup_now(
    State(state): State<Shared>,
    axum::Extension(who): axum::Extension<Who>,
    Form(input): Form<TokenOnly>,
) -> Response {
    if let Some(refused) = token_refused(&state, &input.csrf) {
        return refused;
    }
    let data = state.config.data_dir.clone();
    let schedule = state
        .config
        .backups
        .clone()
        .unwrap_or_else(|| crate::backup::Schedule {
            every: std::time::Duration::from_secs(24 * 3600),
            keep: crate::backup::DEFAULT_KEEP,
            dir: data.join("backups"),
        });
    let made =
        tokio::task::spawn_blocking(move || crate::backup::scheduled(&data, &schedule)).await;
    let text = match made {
        Ok(Ok(done)) => {
            tracing::info!(who = %who, action = "back up now", bytes = done.bytes, "admin action");
            crate::record_backup(&state.engine, &done).await;
            format!(
                "A backup was made and checked: {}, {}, in the folder {}.",
                done.documents_held(),
                crate::backup::human_size(done.bytes),
                done.path
                    .parent()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            )
        }
        Ok(Err(error)) => {
            tracing::error!(who = %who, %error, "an admin's backup failed");
            format!("No backup was made: {error}")
        }
        Err(error) => {
            tracing::error!(%error, "an admin's backup stopped");
            "No backup was made: the backup stopped part-way. Try again; if it fails again, look at the relay's log.".to_string()
        }
    };
    let notice = state.admin.notice(text);
    Redirect::to(&format!("/admin?notice={notice}")).into_response()
}

/// Back to a partnership's page, saying what happened.
fn back_with(state: &AppState, partnership: &str, text: &str) -> Response {
    let notice = state.admin.notice(sentence(text));
    Redirect::to(&format!(
        "/admin/partnerships/{}?notice={notice}",
        pages::url_encode(partnership)
    ))
    .into_response()
}

#[derive(Deserialize)]
struct RoleInput {
    csrf: String,
    school: String,
    partnership: String,
    role: String,
}

async fn change_role(
    State(state): State<Shared>,
    axum::Extension(who): axum::Extension<Who>,
    Form(input): Form<RoleInput>,
) -> Response {
    if let Some(refused) = token_refused(&state, &input.csrf) {
        return refused;
    }
    let role = role_of(&input.role);
    let (school, partnership) = (input.school.clone(), input.partnership.clone());
    match state
        .admin
        .directory(move |d| d.set_role(&school, &partnership, role))
        .await
    {
        Ok((school, partnership)) => {
            tracing::info!(who = %who, action = "change role", school = %school, partnership = %partnership, role = role.as_str(), "admin action");
            state.engine.refresh_register().await;
            back_with(
                &state,
                &input.partnership,
                &format!("{school} is now a {} of {partnership}.", role.as_str()),
            )
        }
        Err(error) => back_with(&state, &input.partnership, &error.to_string()),
    }
}

#[derive(Deserialize)]
struct RemoveQuery {
    school: String,
    partnership: String,
}

async fn remove_form(
    State(state): State<Shared>,
    axum::Extension(who): axum::Extension<Who>,
    Query(q): Query<RemoveQuery>,
) -> Response {
    let (school, wanted) = (q.school.clone(), q.partnership.clone());
    let read = state
        .admin
        .directory(move |d| {
            let found = d.partnerships()?.into_iter().find(|p| p.id == wanted);
            let schools = d.schools(None)?;
            let school = schools
                .into_iter()
                .find(|s| s.name.eq_ignore_ascii_case(school.trim()));
            Ok(found.zip(school))
        })
        .await;
    match read {
        Ok(Some((partnership, school))) => {
            let elsewhere: Vec<String> = school
                .partnerships
                .iter()
                .map(|(p, _)| p.clone())
                .filter(|p| *p != partnership.name)
                .collect();
            page(
                StatusCode::OK,
                pages::remove(&pages::RemovePage {
                    csrf: &state.admin.csrf,
                    logged_in: logged_in(&who),
                    school: &school.name,
                    partnership: &partnership,
                    elsewhere: &elsewhere,
                }),
            )
        }
        Ok(None) => back_with(
            &state,
            &q.partnership,
            &format!(
                "there is no school called “{}” in this partnership.",
                q.school
            ),
        ),
        Err(error) => failure(&error),
    }
}

#[derive(Deserialize)]
struct RemoveInput {
    csrf: String,
    school: String,
    partnership: String,
    from: String,
}

async fn remove_school(
    State(state): State<Shared>,
    axum::Extension(who): axum::Extension<Who>,
    Form(input): Form<RemoveInput>,
) -> Response {
    if let Some(refused) = token_refused(&state, &input.csrf) {
        return refused;
    }
    let whole = input.from == "relay";
    let (school, partnership) = (input.school.clone(), input.partnership.clone());
    let removed = state
        .admin
        .directory(move |d| {
            let name = d
                .partnerships()?
                .into_iter()
                .find(|p| p.id == partnership)
                .map(|p| p.name)
                .unwrap_or(partnership);
            let school = d.remove_school(&school, (!whole).then_some(name.as_str()))?;
            Ok((school, name))
        })
        .await;
    match removed {
        Ok((school, partnership)) => {
            let scope = if whole {
                "the relay"
            } else {
                partnership.as_str()
            };
            tracing::info!(who = %who, action = "remove school", school = %school, from = %scope, "admin action");
            state.engine.refresh_register().await;
            let text = if whole {
                format!(
                    "{school} is removed from this relay. Its invite no longer works and its connections are cut."
                )
            } else {
                format!(
                    "{school} is removed from {partnership}. Its connections are cut; it receives nothing more of {partnership}'s documents."
                )
            };
            back_with(&state, &input.partnership, &text)
        }
        Err(error) => back_with(&state, &input.partnership, &error.to_string()),
    }
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", include_str!("assets/admin.css"))
}

async fn js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/admin.js"),
    )
}

async fn icon() -> Response {
    asset(
        "image/svg+xml",
        "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'><rect width='16' height='16' fill='#0b0c0c'/><text x='3' y='13' font-size='12' fill='white'>r</text></svg>",
    )
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

/// `GET /metrics`: the counters, and what is read from the engine and the
/// database now.
async fn metrics(State(state): State<Shared>) -> Response {
    let (loaded, resting) = state
        .engine
        .query(|repo, _| (repo.loaded_documents(), repo.resting_documents()))
        .await
        .unwrap_or((0, 0));
    let storage = state.admin.directory(|d| d.storage()).await;
    let (documents, bytes, last_backup) = match &storage {
        Ok(s) => (
            s.documents,
            s.bytes,
            s.last_backup.as_deref().and_then(pages::parse_iso),
        ),
        Err(error) => {
            tracing::warn!(%error, "metrics could not read the database's size");
            (0, 0, None)
        }
    };
    let now = unix_seconds();
    let snapshot = metrics::State {
        schools_connected: state.activity.schools_connected(),
        documents_loaded: loaded,
        documents_resting: resting,
        documents_stored: documents,
        storage_bytes: bytes,
        last_backup_age: last_backup.map(|at| now - at),
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics::render(&state.metrics, &snapshot),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_relays_own_computer_goes_without_a_password() {
        use Listener::{Admin, Public};
        let local = Some("127.0.0.1".parse().unwrap());
        let remote = Some("203.0.113.9".parse().unwrap());
        assert_eq!(
            access(Admin, local, "127.0.0.1:7172", false, false),
            Access::Local
        );
        assert_eq!(
            access(Admin, local, "localhost:7172", false, true),
            Access::Local
        );
        assert_eq!(
            access(
                Admin,
                Some("::1".parse().unwrap()),
                "[::1]:7172",
                false,
                false
            ),
            Access::Local
        );
        // Another computer: the password, or nothing.
        assert_eq!(
            access(Public, remote, "relay.example", false, false),
            Access::Refused
        );
        assert_eq!(
            access(Public, remote, "relay.example", false, true),
            Access::Password
        );
        // The public listener is never local, whatever the request says: a
        // proxy on the relay's computer that passes neither the original
        // host nor X-Forwarded-For looks exactly like this.
        assert_eq!(
            access(Public, local, "127.0.0.1:7171", false, false),
            Access::Refused
        );
        assert_eq!(
            access(Public, local, "127.0.0.1:7171", false, true),
            Access::Password
        );
        // On the admin listener: a proxy, or a page of another site whose
        // name resolves to 127.0.0.1, is not the relay's own computer;
        // nor is a connection whose address is not known.
        assert_eq!(
            access(Admin, local, "127.0.0.1:7172", true, false),
            Access::Refused
        );
        assert_eq!(
            access(Admin, local, "evil.example:7172", false, false),
            Access::Refused
        );
        assert_eq!(
            access(Admin, local, "relay.example", false, true),
            Access::Password
        );
        assert_eq!(
            access(Admin, None, "127.0.0.1:7172", false, false),
            Access::Refused
        );
    }

    #[test]
    fn the_log_believes_only_the_hop_a_proxy_on_this_computer_added() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("10.9.9.9, 203.0.113.7"),
        );
        let local = Some("127.0.0.1".parse().unwrap());
        let remote: Option<IpAddr> = Some("198.51.100.4".parse().unwrap());
        // Through a proxy here: the hop it added, not the one the client wrote.
        assert_eq!(
            client_ip(local, &headers),
            Some("203.0.113.7".parse().unwrap())
        );
        // Straight from another computer: its own address, whatever it says.
        assert_eq!(client_ip(remote, &headers), remote);
        assert_eq!(client_ip(local, &HeaderMap::new()), local);
    }

    #[test]
    fn prometheus_credentials_are_read_from_basic_or_bearer() {
        let mut headers = HeaderMap::new();
        // "prometheus:the hall is booked"
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic cHJvbWV0aGV1czp0aGUgaGFsbCBpcyBib29rZWQ="),
        );
        assert_eq!(credentials(&headers).as_deref(), Some("the hall is booked"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc def"),
        );
        assert_eq!(credentials(&headers).as_deref(), Some("abc def"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert_eq!(credentials(&headers), None);
    }
}
