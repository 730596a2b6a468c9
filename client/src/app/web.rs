//! The app's HTTP side: routes, the checks every request passes, and the
//! handlers that turn a page's request into one call of the model.
//!
//! Safety on a shared computer: the app answers only requests addressed
//! to its own host name (against DNS rebinding), refuses changes from
//! other origins, and every change carries the page's secret token (a
//! page of another site can neither read it nor guess it).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use automerge::Automerge;
use automerge::{ActorId, ChangeHash};
use axum::Json;
use axum::Router;
use axum::extract::{Form, Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use futures_util::stream::{self, Stream};
use partnerplan_model::records::SignatureInput;
use partnerplan_model::signing::KnownKeys;
use partnerplan_model::{
    Author, Placement, ProseEdit, When, create, edit as model_edit, read, review, rows,
};
use partnerplan_model::{DocView, Kind, RowView, TableView};
use partnerplan_sync::DocumentId;
use partnerplan_web::guard::constant_time_eq;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{mpsc, watch};

use super::library::{EditError, Library};
use super::pages::{self, Chrome, DocPage, Home, JoinForm};
use super::sync_state::SyncState;
use super::{Joining, comments, county, password, versions};

pub struct AppState {
    pub library: Arc<Library>,
    pub csrf: String,
    /// The login form's own token: the login page is shown to anyone who
    /// reaches the app, so it must not carry [`AppState::csrf`].
    pub login_csrf: String,
    /// `Host` values this app answers to.
    pub hosts: Vec<String>,
    pub sync: watch::Receiver<SyncState>,
    /// The password's hash, when the app is served beyond this computer.
    pub password: Option<String>,
    pub sessions: password::Sessions,
    /// Where the login page's passwords are checked, a few a minute.
    pub passwords: password::PasswordGate,
    pub signed_views: versions::SignedViews,
    pub person: std::sync::RwLock<Option<String>>,
    /// The school's data folder (its signing key is there).
    pub dir: std::path::PathBuf,
    pub joining: Joining,
}

pub(super) type Shared = Arc<AppState>;

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/documents", get(documents))
        .route("/partnerships", get(county::overview))
        .route(
            "/partnerships/{id}/comment",
            get(comments::form).post(comments::write),
        )
        .route("/county", get(county::county_table))
        .route("/county.csv", get(county::county_csv))
        .route("/county.md", get(county::county_markdown))
        .route("/outcomes", get(county::outcomes))
        .route("/outcomes.csv", get(county::outcomes_csv))
        .route("/outcomes.md", get(county::outcomes_markdown))
        .route("/funding", get(county::funding))
        .route("/funding.csv", get(county::funding_csv))
        .route("/funding.md", get(county::funding_markdown))
        .route("/join", get(join_form).post(join))
        .route("/login", get(login_form).post(login))
        .route("/new", post(new_document))
        .route("/doc/{id}", get(document))
        .route("/doc/{id}/body", get(document_body))
        .route("/doc/{id}/field", post(set_field))
        .route("/doc/{id}/text", post(type_text))
        .route("/doc/{id}/rows", post(row_change))
        .route("/doc/{id}/resolve", post(resolve))
        .route("/doc/{id}/review", post(record_review))
        .route("/doc/{id}/sign", post(sign_review))
        .route("/doc/{id}/withdraw", post(withdraw_review))
        .route("/doc/{id}/signed/{review}", get(signed))
        .route("/doc/{id}/history", get(history))
        .route("/doc/{id}/as-of", get(as_of))
        .route("/doc/{id}/print", get(print))
        .route("/events", get(events))
        .route("/hello", get(hello))
        .route("/assets/app.css", get(css))
        .route("/assets/app.js", get(js))
        .route("/favicon.ico", get(favicon))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Every request: the right `Host`; every change: no other origin.
async fn guard(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    // On the school's network the app answers to whatever name the
    // network gives it, and the password guards it instead.
    let known_host = state.hosts.iter().any(|h| h.eq_ignore_ascii_case(host));
    if !known_host && state.password.is_none() {
        tracing::warn!("refused a request addressed to another host name");
        return (
            StatusCode::MISDIRECTED_REQUEST,
            "This is a school's partnerplan app, and that address is not its own. Open it from the address it printed when it started.",
        )
            .into_response();
    }
    let changes = !matches!(*request.method(), Method::GET | Method::HEAD);
    if changes {
        let origin = headers.get(header::ORIGIN).and_then(|h| h.to_str().ok());
        let fetch_site = headers.get("sec-fetch-site").and_then(|h| h.to_str().ok());
        if !partnerplan_web::guard::same_origin(origin, fetch_site, host) {
            tracing::warn!("refused a change sent from another web page");
            return (
                StatusCode::FORBIDDEN,
                "Changes can only be made from partnerplan's own pages.",
            )
                .into_response();
        }
    }
    if state.password.is_some() && !logged_in(&state, headers) {
        let path = request.uri().path();
        let open = path == "/login"
            || path == "/hello"
            || path.starts_with("/assets/")
            || path == "/favicon.ico";
        if !open {
            return if changes {
                (
                    StatusCode::UNAUTHORIZED,
                    Json(json!({"error": "Log in to the app again, then make the change."})),
                )
                    .into_response()
            } else {
                Redirect::to("/login").into_response()
            };
        }
    }
    plain_refusals(next.run(request).await)
}

/// The most one request may carry: far more than any cell a person types.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// axum's own refusals (a body too large, JSON that does not parse) are
/// for programmers; a page shows these sentences instead.
fn plain_refusals(response: Response) -> Response {
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    let sentence = match response.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            "That is more than one change can carry (1 MB). Split the text into several cells or paste it in parts."
        }
        StatusCode::BAD_REQUEST
        | StatusCode::UNPROCESSABLE_ENTITY
        | StatusCode::UNSUPPORTED_MEDIA_TYPE
            if plain =>
        {
            "The page sent something this app could not read, so nothing was changed. Reload the page and try again."
        }
        _ => return response,
    };
    (response.status(), Json(json!({ "error": sentence }))).into_response()
}

const SESSION_COOKIE: &str = "pp_session";

fn logged_in(state: &AppState, headers: &HeaderMap) -> bool {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .any(|(name, value)| name == SESSION_COOKIE && state.sessions.valid(value))
}

async fn login_form(State(state): State<Shared>) -> Response {
    Html(pages::login(&state.login_csrf, None).into_string()).into_response()
}

#[derive(Deserialize)]
struct LoginInput {
    csrf: String,
    password: String,
}

async fn login(State(state): State<Shared>, Form(input): Form<LoginInput>) -> Response {
    if !constant_time_eq(&input.csrf, &state.login_csrf) {
        return refused_token();
    }
    let Some(stored) = state.password.clone() else {
        return Redirect::to("/").into_response();
    };
    let error = match state.passwords.check(input.password, stored).await {
        password::PasswordCheck::Right => None,
        password::PasswordCheck::Wrong => {
            tracing::warn!("a wrong password was given at the login page");
            Some((
                StatusCode::UNAUTHORIZED,
                "That is not the app's password. Try again, or ask whoever set it up at your school.",
            ))
        }
        password::PasswordCheck::TooMany => {
            tracing::warn!("refused a login: too many wrong passwords in the last minute");
            Some((
                StatusCode::TOO_MANY_REQUESTS,
                "Too many wrong passwords were tried in the last minute. Wait a minute, then try again.",
            ))
        }
    };
    if let Some((status, sentence)) = error {
        return (
            status,
            Html(pages::login(&state.login_csrf, Some(sentence)).into_string()),
        )
            .into_response();
    }
    let session = state.sessions.start();
    (
        [(
            header::SET_COOKIE,
            format!("{SESSION_COOKIE}={session}; HttpOnly; SameSite=Strict; Path=/"),
        )],
        Redirect::to("/"),
    )
        .into_response()
}

/// A JSON change must carry the page's token in `X-CSRF-Token`.
fn check_token(state: &AppState, headers: &HeaderMap) -> Result<(), Refusal> {
    let sent = headers.get("x-csrf-token").and_then(|h| h.to_str().ok());
    if sent.is_some_and(|s| constant_time_eq(s, &state.csrf)) {
        Ok(())
    } else {
        Err(Refusal(Box::new(refused_token())))
    }
}

/// A request turned away before it did anything, with the page or
/// sentence that says why.
pub(super) struct Refusal(pub(super) Box<Response>);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        *self.0
    }
}

fn refused_token() -> Response {
    (
        StatusCode::FORBIDDEN,
        Json(json!({"error": "This change did not come from one of this app's pages, so it was not made. Reload the page and try again."})),
    )
        .into_response()
}

pub(super) struct Who {
    school: String,
    person: Option<String>,
    actor: ActorId,
    can_edit: bool,
}

pub(super) fn who(state: &AppState) -> Result<Who, Refusal> {
    let meta = |key: &str| state.library.meta(key).ok().flatten();
    let actor = meta("actor_id")
        .and_then(|hex| ActorId::try_from(hex.as_str()).ok())
        .ok_or_else(|| Refusal(Box::new(Redirect::to("/join").into_response())))?;
    Ok(Who {
        school: meta("school_name").unwrap_or_default(),
        // The person the app was started (or joined) as: a command-line
        // `--as` meanwhile does not change who edits here.
        person: state
            .person
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone(),
        actor,
        can_edit: meta("role").as_deref() != Some("viewer"),
    })
}

impl Who {
    pub(super) fn person(&self) -> Option<&str> {
        self.person.as_deref()
    }

    pub(super) fn actor(&self) -> &ActorId {
        &self.actor
    }
}

pub(super) fn author(who: &Who) -> Author {
    Author {
        school: who.school.clone(),
        person: who.person.clone(),
        time: crate::status::now_unix(),
    }
}

pub(super) fn chrome<'a>(state: &'a AppState, who: &'a Who, sync: &'a SyncState) -> Chrome<'a> {
    Chrome {
        school: &who.school,
        person: who.person.as_deref(),
        csrf: &state.csrf,
        sync,
    }
}

/// The home page: the partnership's documents, or, for a school that
/// views several partnerships (a local authority), the overview of them.
async fn home(State(state): State<Shared>) -> Response {
    if let Err(redirect) = who(&state) {
        return redirect.into_response();
    }
    if county::overview_is_home(&state.library) {
        return county::overview_page(&state, &Default::default());
    }
    documents(State(state)).await
}

/// Every document this school holds, newest change first.
async fn documents(State(state): State<Shared>) -> Response {
    let who = match who(&state) {
        Ok(who) => who,
        Err(redirect) => return redirect.into_response(),
    };
    let library = state.library.clone();
    let listed = tokio::task::spawn_blocking(move || library.list()).await;
    let documents = match listed {
        Ok(Ok(documents)) => documents,
        Ok(Err(error)) => return failure(&error.to_string()),
        Err(_) => return failure("the list of documents could not be read"),
    };
    let mut conflicts = 0;
    let mut partnership = None;
    let mut schools = Vec::new();
    // A school that views several partnerships (a local authority) holds
    // all their documents, and chooses no partnership's values: its list
    // is not read document by document.
    let several = county::overview_is_home(&state.library);
    // The local authority's comments to the partnership: documents the
    // relay lists as one school's alone (never judged by their contents).
    let listed = state.library.partnerships();
    let mut comments: Vec<(String, DocView)> = Vec::new();
    for d in documents.iter().filter(|_| !several) {
        if let Ok(Some((view, _))) = state.library.read(&d.id) {
            conflicts += view.conflicts().len();
            if view.kind == Kind::Comments && listed.iter().any(|p| p.is_shared(&d.id)) {
                comments.push((d.id.to_string(), view));
                continue;
            }
            if view.kind == Kind::Partnership && partnership.is_none() {
                partnership = Some(view.title.clone());
                schools = view
                    .live("schools")
                    .iter()
                    .filter_map(|r| r.field("name").map(|f| f.text.clone()))
                    .filter(|n| !n.is_empty())
                    .collect();
            }
        }
    }
    let partnership = partnership.or_else(|| state.library.meta("partnership_name").ok().flatten());
    let (partnership, schools) = if several {
        (
            Some("Every document on this computer".to_string()),
            Vec::new(),
        )
    } else {
        (partnership, schools)
    };
    let sync = state.sync.borrow().clone();
    Html(
        pages::home(
            &chrome(&state, &who, &sync),
            &Home {
                partnership: partnership.as_deref(),
                schools: &schools,
                documents: &documents,
                comments: &comments,
                conflicts,
                can_edit: who.can_edit,
            },
        )
        .into_string(),
    )
    .into_response()
}

pub(super) fn failure(text: &str) -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Html(pages::message("Something went wrong", None, &format!("{text}. Your documents are safe on this computer; try again, and if it keeps happening ask your IT support to look at partnerplan's log.")).into_string()),
    )
        .into_response()
}

async fn join_form(State(state): State<Shared>) -> Response {
    Html(
        pages::join(
            &state.csrf,
            None,
            &JoinForm {
                invite: "",
                school: &state
                    .library
                    .meta("school_name")
                    .ok()
                    .flatten()
                    .unwrap_or_default(),
                person: &state
                    .library
                    .meta("person")
                    .ok()
                    .flatten()
                    .unwrap_or_default(),
                role: &state
                    .library
                    .meta("person_role")
                    .ok()
                    .flatten()
                    .unwrap_or_default(),
            },
        )
        .into_string(),
    )
    .into_response()
}

#[derive(Deserialize)]
struct JoinInput {
    csrf: String,
    invite: String,
    school: String,
    person: String,
    #[serde(default)]
    role: String,
}

async fn join(State(state): State<Shared>, Form(input): Form<JoinInput>) -> Response {
    if !constant_time_eq(&input.csrf, &state.csrf) {
        return refused_token();
    }
    let result = state.joining.join(
        &state.library,
        input.invite.trim(),
        input.school.trim(),
        input.person.trim(),
        input.role.trim(),
    );
    match result {
        Ok(()) => {
            *state.person.write().unwrap_or_else(|p| p.into_inner()) =
                Some(input.person.trim().to_string());
            Redirect::to("/").into_response()
        }
        Err(error) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Html(
                pages::join(
                    &state.csrf,
                    Some(&error),
                    &JoinForm {
                        invite: &input.invite,
                        school: &input.school,
                        person: &input.person,
                        role: &input.role,
                    },
                )
                .into_string(),
            ),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct NewInput {
    csrf: String,
    kind: String,
    title: String,
}

async fn new_document(State(state): State<Shared>, Form(input): Form<NewInput>) -> Response {
    if !constant_time_eq(&input.csrf, &state.csrf) {
        return refused_token();
    }
    let who = match who(&state) {
        Ok(who) => who,
        Err(redirect) => return redirect.into_response(),
    };
    let kind = match Kind::parse(&input.kind) {
        Ok(kind) => kind,
        Err(reason) => return (StatusCode::UNPROCESSABLE_ENTITY, reason).into_response(),
    };
    let title = input.title.trim();
    let title = if title.is_empty() {
        kind.label()
    } else {
        title
    };
    let author = author(&who);
    match state.library.create(
        &who.actor,
        &author,
        format!("created the {}", kind.label().to_lowercase()),
        |d| create::create(d, kind, title, None, &author),
    ) {
        Ok(id) => Redirect::to(&format!("/doc/{id}")).into_response(),
        Err(error @ EditError::ReadOnly) => forbidden(&error),
        Err(error) => failure(&error.to_string()),
    }
}

fn parse_id(id: &str) -> Option<DocumentId> {
    DocumentId::parse_url_or_id(id).ok()
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Html(pages::message("No such document", None, "This computer holds no such document. It may not have arrived from your partners yet.").into_string()),
    )
        .into_response()
}

async fn document(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    tokio::task::block_in_place(|| render_document(&state, &id, false))
}

async fn document_body(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    tokio::task::block_in_place(|| render_document(&state, &id, true))
}

/// The document page, or only its body (for live refreshes).
fn render_document(state: &AppState, id: &str, body_only: bool) -> Response {
    let who = match who(state) {
        Ok(who) => who,
        Err(redirect) => return redirect.into_response(),
    };
    let Some(id) = parse_id(id) else {
        return not_found();
    };
    let (view, heads) = match state.library.read(&id) {
        Ok(Some(read)) => read,
        Ok(None) => return not_found(),
        Err(error) => return failure(&error.to_string()),
    };
    let since = state
        .library
        .with_doc(&id, |d| {
            versions::since_signed(d.document(), &view, &state.signed_views)
        })
        .ok()
        .flatten()
        .flatten();
    let set_at = conflict_times(state, &id, &view);
    let keys = match state.library.known_keys(&state.dir) {
        Ok(keys) => keys,
        Err(error) => return failure(&error.to_string()),
    };
    let id_text = id.to_string();
    let page = DocPage {
        id: &id_text,
        view: &view,
        heads: &heads,
        editable: state.library.can_edit(&id),
        school: &who.school,
        person: who.person.as_deref(),
        since: since.as_ref(),
        version: None,
        set_at: &set_at,
        keys: &keys,
    };
    if body_only {
        return Html(pages::document_body(&page).into_string()).into_response();
    }
    let sync = state.sync.borrow().clone();
    Html(pages::document(&chrome(state, &who, &sync), &page).into_string()).into_response()
}

/// When each value two schools gave at once was set.
fn conflict_times(state: &AppState, id: &DocumentId, view: &DocView) -> HashMap<String, i64> {
    let conflicts = view.conflicts();
    if conflicts.is_empty() {
        return HashMap::new();
    }
    state
        .library
        .with_doc(id, |d| {
            let doc = d.document();
            conflicts
                .iter()
                .flat_map(|c| c.values.iter())
                .filter_map(|c| {
                    partnerplan_model::history::set_at(doc, c)
                        .map(|t| (format!("{}:{}", c.actor, c.op), t))
                })
                .collect()
        })
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// An earlier version, read only: as a review signed it, or as it stood
/// at the end of a day.
fn render_version(
    state: &AppState,
    id: &DocumentId,
    version: impl FnOnce(&Automerge, &DocView) -> Result<(DocView, String), String>,
) -> Response {
    let who = match who(state) {
        Ok(who) => who,
        Err(redirect) => return redirect.into_response(),
    };
    let Ok(Some((now, heads))) = state.library.read(id) else {
        return not_found();
    };
    let earlier = match state.library.with_doc(id, |d| version(d.document(), &now)) {
        Ok(Some(Ok(earlier))) => earlier,
        Ok(Some(Err(reason))) => {
            return (
                StatusCode::NOT_FOUND,
                Html(pages::message("That version cannot be shown", None, &reason).into_string()),
            )
                .into_response();
        }
        _ => return not_found(),
    };
    let (view, name) = earlier;
    let id_text = id.to_string();
    let sync = state.sync.borrow().clone();
    let page = DocPage {
        id: &id_text,
        view: &view,
        heads: &heads,
        editable: false,
        school: &who.school,
        person: who.person.as_deref(),
        since: None,
        version: Some(&name),
        set_at: &HashMap::new(),
        keys: &KnownKeys::default(),
    };
    Html(pages::document(&chrome(state, &who, &sync), &page).into_string()).into_response()
}

async fn signed(
    State(state): State<Shared>,
    Path((id, review)): Path<(String, String)>,
) -> Response {
    let Some(id) = parse_id(&id) else {
        return not_found();
    };
    render_version(&state, &id, |doc, now| {
        versions::as_signed(doc, now, &review).map_err(|e| sentence(&e.for_page()))
    })
}

#[derive(Deserialize)]
struct AsOfInput {
    date: String,
}

async fn as_of(
    State(state): State<Shared>,
    Path(id): Path<String>,
    axum::extract::Query(input): axum::extract::Query<AsOfInput>,
) -> Response {
    let Some(id) = parse_id(&id) else {
        return not_found();
    };
    let day = match When::parse(&input.date) {
        Ok(When::Date { year, month, day }) => (year, month, day),
        _ => {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                Html(pages::message("That is not a date", None, "Choose a day, such as 11 July 2017, to see the document as it stood at its end.").into_string()),
            )
                .into_response();
        }
    };
    let end_of_day = partnerplan_model::when::unix_from_date(day.0, day.1, day.2) + 86_399;
    let human = When::Date {
        year: day.0,
        month: day.1,
        day: day.2,
    }
    .human();
    render_version(&state, &id, move |doc, _| {
        match versions::as_of(doc, end_of_day) {
            Some(heads) => partnerplan_model::read::read_at(doc, &heads)
                .map(|view| (view, format!("as it stood at the end of {human}")))
                .map_err(|e| sentence(&e.for_page())),
            None => Err(format!(
                "The document did not exist yet at the end of {human}."
            )),
        }
    })
}

async fn history(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    let who = match who(&state) {
        Ok(who) => who,
        Err(redirect) => return redirect.into_response(),
    };
    let Some(id) = parse_id(&id) else {
        return not_found();
    };
    let Ok(Some((view, _))) = state.library.read(&id) else {
        return not_found();
    };
    let names = state.library.actor_names().unwrap_or_default();
    let entries = state
        .library
        .with_doc(&id, |d| {
            partnerplan_model::history::history(d.document(), &[], &names)
        })
        .ok()
        .flatten()
        .unwrap_or_default();
    let changes: Vec<pages::Change> = entries
        .into_iter()
        .rev()
        .map(|e| pages::Change {
            time: e.time,
            who: match (&e.person, &e.school) {
                (Some(p), Some(s)) => format!("{p} ({s})"),
                (None, Some(s)) => s.clone(),
                (Some(p), None) => p.clone(),
                (None, None) => "Another school".into(),
            },
            what: e
                .message
                .map(|m| sentence(&m))
                .unwrap_or_else(|| "Changed the document".into()),
        })
        .collect();
    let sync = state.sync.borrow().clone();
    Html(
        pages::history(
            &chrome(&state, &who, &sync),
            &id.to_string(),
            &view.title,
            &changes,
        )
        .into_string(),
    )
    .into_response()
}

async fn print(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    let Some(id) = parse_id(&id) else {
        return not_found();
    };
    let Ok(Some((view, _))) = state.library.read(&id) else {
        return not_found();
    };
    // A signature line for each member school, from the partnership the
    // document belongs to.
    let schools: Vec<String> = view
        .partnership
        .as_deref()
        .and_then(parse_id)
        .and_then(|p| state.library.read(&p).ok().flatten())
        .map(|(partnership, _)| {
            partnership
                .live("schools")
                .iter()
                .filter_map(|r| r.field("name").map(|f| f.text.clone()))
                .filter(|n| !n.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let schools = if schools.is_empty() {
        vec![
            state
                .library
                .meta("school_name")
                .ok()
                .flatten()
                .unwrap_or_default(),
        ]
    } else {
        schools
    };
    Html(pages::print(&view, &schools, crate::status::now_unix()).into_string()).into_response()
}

fn parse_heads(text: &str) -> Result<Vec<ChangeHash>, Refusal> {
    text.split(',')
        .filter(|h| !h.is_empty())
        .map(|h| h.parse::<ChangeHash>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| {
            Refusal(Box::new(refusal("The page sent a version this app cannot read. Reload the page and make the change again.")))
        })
}

fn refusal(text: &str) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({"error": text})),
    )
        .into_response()
}

/// An edit this school may not make (it only reads the partnership's
/// documents, or the document is another's shared to read), saying why.
fn forbidden(error: &EditError) -> Response {
    (
        StatusCode::FORBIDDEN,
        Json(json!({"error": sentence(&error.to_string())})),
    )
        .into_response()
}

/// The common shape of every edit: check, then one model call as this
/// school's person, against the version the page showed.
fn edit<T: serde::Serialize>(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
    heads: Option<&str>,
    message: String,
    f: impl FnOnce(&mut automerge::AutoCommit, &Author) -> Result<T, partnerplan_model::ModelError>,
) -> Response {
    if let Err(refused) = check_token(state, headers) {
        return refused.into_response();
    }
    let who = match who(state) {
        Ok(who) => who,
        Err(redirect) => return redirect.into_response(),
    };
    let Some(id) = parse_id(id) else {
        return refusal(&sentence(&EditError::NoSuchDocument.to_string()));
    };
    // No version named: the latest.
    let at = match heads.map(parse_heads).transpose() {
        Ok(at) => at.filter(|heads| !heads.is_empty()),
        Err(refused) => return refused.into_response(),
    };
    let author = author(&who);
    // The edit runs on this worker thread without holding up the others.
    let edited = tokio::task::block_in_place(|| {
        state
            .library
            .edit(&id, &who.actor, &author, at.as_deref(), message, |d| {
                f(d, &author)
            })
    });
    match edited {
        Ok((result, hash)) => Json(json!({
            "ok": true,
            "result": result,
            "heads": hash.map(|h| h.to_string()),
        }))
        .into_response(),
        Err(error @ (EditError::ReadOnly | EditError::Shared)) => forbidden(&error),
        Err(error) => refusal(&sentence(&error.for_page())),
    }
}

/// A field's name as people read it ("review date"), for the history.
fn label_of(key: &str) -> String {
    fn find(
        tables: &'static [partnerplan_model::schema::Table],
        key: &str,
    ) -> Option<&'static str> {
        tables.iter().find_map(|t| {
            t.field(key)
                .map(|f| f.label)
                .or_else(|| find(t.tables, key))
        })
    }
    if key == "title" {
        return "the title".into();
    }
    partnerplan_model::KINDS
        .iter()
        .find_map(|k| {
            let schema = k.schema();
            schema
                .field(key)
                .map(|f| f.label)
                .or_else(|| find(schema.tables, key))
        })
        .map(|label| label.to_lowercase())
        .unwrap_or_else(|| key.to_string())
}

/// What one row of a table is called ("an action"), for the history.
fn row_name_of(table: &str) -> String {
    partnerplan_model::KINDS
        .iter()
        .find_map(|k| k.schema().table(table))
        .map(|t| {
            let article = if t.row.starts_with(['a', 'e', 'i', 'o', 'u']) {
                "an"
            } else {
                "a"
            };
            format!("{article} {}", t.row)
        })
        .unwrap_or_else(|| "a row".into())
}

/// The model speaks to the command line; the page shows the same
/// sentence, starting with a capital.
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[derive(Deserialize)]
struct FieldInput {
    #[serde(default)]
    row: Option<String>,
    key: String,
    value: String,
    heads: String,
}

async fn set_field(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(input): Json<FieldInput>,
) -> Response {
    let row = input.row.filter(|r| !r.is_empty());
    edit(
        &state,
        &headers,
        &id,
        Some(&input.heads),
        format!("set {}", label_of(&input.key)),
        |d, who| model_edit::set_field(d, row.as_deref(), &input.key, &input.value, who),
    )
}

#[derive(Deserialize)]
struct TextInput {
    #[serde(default)]
    row: Option<String>,
    key: String,
    heads: String,
    after: String,
}

async fn type_text(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(input): Json<TextInput>,
) -> Response {
    let row = input.row.filter(|r| !r.is_empty());
    edit(
        &state,
        &headers,
        &id,
        Some(&input.heads),
        format!("typed in {}", label_of(&input.key)),
        |d, who| {
            model_edit::edit_prose(
                d,
                row.as_deref(),
                &input.key,
                &ProseEdit::Replace(input.after),
                who,
            )
            .map(|_| ())
        },
    )
}

#[derive(Deserialize)]
#[serde(tag = "do", rename_all = "lowercase")]
enum RowInput {
    Add {
        table: String,
        #[serde(default)]
        parent: Option<String>,
    },
    Move {
        row: String,
        up: bool,
    },
    Remove {
        row: String,
    },
    Restore {
        row: String,
    },
}

async fn row_change(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(input): Json<RowInput>,
) -> Response {
    match input {
        RowInput::Add { table, parent } => {
            let parent = parent.filter(|p| !p.is_empty());
            edit(
                &state,
                &headers,
                &id,
                None,
                format!("added {}", row_name_of(&table)),
                |d, who| rows::add_row(d, &table, parent.as_deref(), &[], &Placement::End, who),
            )
        }
        RowInput::Move { row, up } => edit(
            &state,
            &headers,
            &id,
            None,
            "moved a row".into(),
            |d, who| {
                let view = read::read(d)?;
                match neighbour(&view, &row, up) {
                    Some(placement) => rows::move_row(d, &row, &placement, who),
                    None => Ok(()),
                }
            },
        ),
        RowInput::Remove { row } => edit(
            &state,
            &headers,
            &id,
            None,
            "removed a row".into(),
            |d, who| rows::remove_row(d, &row, who),
        ),
        RowInput::Restore { row } => edit(
            &state,
            &headers,
            &id,
            None,
            "brought back a row".into(),
            |d, who| rows::restore_row(d, &row, who),
        ),
    }
}

/// Where a row goes when moved one place up or down among the rows shown.
fn neighbour(view: &DocView, row: &str, up: bool) -> Option<Placement> {
    fn find<'a>(tables: &'a [TableView], row: &str) -> Option<Vec<&'a RowView>> {
        for table in tables {
            let live = table.live();
            if live.iter().any(|r| r.id == row) {
                return Some(live);
            }
            for r in &table.rows {
                if let Some(found) = find(&r.tables, row) {
                    return Some(found);
                }
            }
        }
        None
    }
    let siblings = find(&view.tables, row)?;
    let at = siblings.iter().position(|r| r.id == row)?;
    if up {
        at.checked_sub(1)
            .map(|i| Placement::Before(siblings[i].id.clone()))
    } else {
        siblings.get(at + 1).map(|r| Placement::After(r.id.clone()))
    }
}

#[derive(Deserialize)]
struct ReviewInput {
    date: String,
    #[serde(default)]
    by: String,
    #[serde(default)]
    note: String,
}

async fn record_review(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(input): Json<ReviewInput>,
) -> Response {
    edit(
        &state,
        &headers,
        &id,
        None,
        "recorded a review".into(),
        |d, who| {
            review::record(
                d,
                &input.date,
                &input.by,
                Some(&input.note),
                review::Given::Nothing,
                who,
            )
        },
    )
}

#[derive(Deserialize)]
struct SignInput {
    review: String,
    name: String,
    role: String,
}

/// A signature is given at this school, for this school: the school is
/// never taken from the page, and the signature is sealed with the
/// school's key and carries the time it is made.
async fn sign_review(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(input): Json<SignInput>,
) -> Response {
    let signer = match tokio::task::block_in_place(|| state.library.signer(&state.dir)) {
        Ok(signer) => signer,
        Err(error) => return refusal(&sentence(&error.to_string())),
    };
    let document = parse_id(&id).map(|d| d.to_string()).unwrap_or_default();
    edit(
        &state,
        &headers,
        &id,
        None,
        "signed a review".into(),
        |d, who| {
            let signature = SignatureInput {
                name: Some(input.name.trim().to_string()).filter(|n| !n.is_empty()),
                role: input.role.clone(),
                school: String::new(),
                date: None,
            };
            review::sign(d, &document, &input.review, &signature, &signer, who).map(|_| ())
        },
    )
}

#[derive(Deserialize)]
struct WithdrawInput {
    review: String,
    #[serde(default)]
    reason: String,
}

/// A review recorded by mistake is withdrawn: it stays, marked.
async fn withdraw_review(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(input): Json<WithdrawInput>,
) -> Response {
    edit(
        &state,
        &headers,
        &id,
        None,
        "withdrew a review".into(),
        |d, who| review::withdraw(d, &input.review, Some(&input.reason), who).map(|_| ()),
    )
}

#[derive(Deserialize)]
struct ResolveInput {
    #[serde(default)]
    row: Option<String>,
    key: String,
    choice: String,
}

async fn resolve(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(input): Json<ResolveInput>,
) -> Response {
    let row = input.row.filter(|r| !r.is_empty());
    edit(
        &state,
        &headers,
        &id,
        None,
        format!("chose the value of {}", label_of(&input.key)),
        |d, who| model_edit::resolve(d, row.as_deref(), &input.key, &input.choice, who),
    )
}

/// Live updates: `doc` names a document that changed; `sync` carries the
/// indicator. Each page listens and refreshes what it shows.
async fn events(State(state): State<Shared>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (tx, rx) = mpsc::channel::<Event>(64);
    let mut changes = state.library.subscribe();
    let mut sync = state.sync.clone();
    tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                changed = changes.recv() => match changed {
                    Ok(id) => Event::default().event("doc").data(id.to_string()),
                    // Missed some: every page refreshes.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => Event::default().event("doc").data("*"),
                    Err(_) => break,
                },
                changed = sync.changed() => {
                    if changed.is_err() { break; }
                    let state = sync.borrow_and_update().clone();
                    Event::default().event("sync").data(pages::sync_indicator(&state).into_string())
                }
            };
            if tx.send(event).await.is_err() {
                break;
            }
        }
    });
    let stream = stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|event| (Ok(event), rx))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// Lets a second start of the app find this one.
async fn hello(State(state): State<Shared>) -> Response {
    let school = state
        .library
        .meta("storage_id")
        .ok()
        .flatten()
        .unwrap_or_default();
    Json(json!({"app": "partnerplan", "store": school})).into_response()
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", include_str!("assets/app.css"))
}

async fn js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    )
}

async fn favicon() -> Response {
    asset(
        "image/svg+xml",
        "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'><rect width='16' height='16' fill='#00703c'/><text x='3' y='13' font-size='12' fill='white'>p</text></svg>",
    )
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}
