//! `partnerplan demo`: a relay and two schools on this machine, showing
//! the loop the product exists for: edit offline, reconnect, converge.

use std::time::Duration;

use partnerplan_relay::directory::{Directory, Role};
use partnerplan_relay::{Relay, RelayConfig};

use crate::documents::{self, TextEdit};
use crate::error::ClientError;
use crate::school::School;
use crate::sync::{self, SyncOptions};

pub fn run() -> Result<(), ClientError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ClientError::Other(format!("could not start: {e}")))?;
    runtime.block_on(demo())
}

async fn demo() -> Result<(), ClientError> {
    let workspace = tempfile::tempdir()
        .map_err(|e| ClientError::Other(format!("could not make a folder for the demo: {e}")))?;
    let relay_dir = workspace.path().join("relay");
    let listen = "127.0.0.1:0".parse().expect("a valid address");
    let relay = start_relay(RelayConfig::new(listen, &relay_dir)).await?;
    let addr = relay.addr();
    println!(
        "1. The lead school's relay is running at {} (data in {}).",
        relay.url(),
        relay_dir.display()
    );

    let mut register =
        Directory::open(&relay_dir).map_err(|e| ClientError::Other(e.to_string()))?;
    let admin = |e: partnerplan_relay::directory::DirectoryError| ClientError::Other(e.to_string());
    register
        .create_partnership("Hilltop and Valley Federation")
        .map_err(admin)?;
    let mut invite = |name: &str| -> Result<String, ClientError> {
        let (invite, _, _) = register
            .add_school(
                "Hilltop and Valley Federation",
                name,
                Role::Member,
                &relay.url(),
            )
            .map_err(admin)?;
        Ok(invite.map(|i| i.line()).unwrap_or_default())
    };
    let (a_invite, b_invite) = (invite("Hilltop Primary")?, invite("Valley Infants")?);
    let a_dir = workspace.path().join("hilltop-primary");
    let b_dir = workspace.path().join("valley-infants");
    let mut a = School::init(&a_dir, "Hilltop Primary", None)?;
    a.join(&a_invite, None)?;
    let mut b = School::init(&b_dir, "Valley Infants", None)?;
    b.join(&b_invite, None)?;
    println!(
        "2. The lead school registered a partnership and invited two schools, Hilltop Primary and Valley Infants; each set up its own copy with its invite."
    );

    let id = documents::create(&mut a, "Partnership action plan 2026-27")?;
    let url = id.url();
    sync_once(&a_dir).await?;
    documents::open(&mut b, &url)?;
    sync_once(&b_dir).await?;
    println!("3. Hilltop created {url}; Valley opened it by that URL.");

    relay.shutdown().await;
    println!("4. The relay goes offline. Both schools keep editing:");
    documents::set_field(&mut a, &url, "status", "amber")?;
    documents::set_field(&mut a, &url, "lead", "Mrs Okafor (Hilltop)")?;
    documents::edit_text(&mut a, &url, "title", TextEdit::Append(" (draft)".into()))?;
    println!("   Hilltop sets status to amber, names a lead, and adds “(draft)” to the title.");
    documents::set_field(&mut b, &url, "status", "green")?;
    documents::set_field(&mut b, &url, "review", "Spring 1")?;
    documents::edit_text(
        &mut b,
        &url,
        "title",
        TextEdit::Insert {
            at: 0,
            text: "Joint ".into(),
        },
    )?;
    println!(
        "   Valley sets status to green, a review in Spring 1, and writes “Joint ” before the title."
    );
    for (name, school) in [("Hilltop", &a), ("Valley", &b)] {
        let status = crate::status::status(school)?;
        println!(
            "   {name} has {} document(s) waiting to sync.",
            status.unconfirmed.len()
        );
    }

    let relay = start_relay(RelayConfig::new(addr, &relay_dir)).await?;
    println!(
        "5. The relay is back at {}. Both schools sync:",
        relay.url()
    );
    sync_once(&a_dir).await?;
    sync_once(&b_dir).await?;
    sync_once(&a_dir).await?;

    let (_, doc_a) = documents::load(&a, &url)?;
    let (_, doc_b) = documents::load(&b, &url)?;
    let json_a = documents::to_json(&doc_a);
    let json_b = documents::to_json(&doc_b);
    println!(
        "{}",
        serde_json::to_string_pretty(&json_a).unwrap_or_default()
    );
    if json_a == json_b {
        println!("6. Both schools now hold the same document, with every edit.");
    } else {
        println!("6. The schools differ; this is a bug:\n{json_b}");
    }
    for conflict in documents::conflicts(&doc_a) {
        let values: Vec<String> = conflict.values.iter().map(|v| v.to_string()).collect();
        println!(
            "   “{}” was set to {} at once: both stay visible until someone chooses.",
            conflict.path,
            values.join(" and ")
        );
    }
    relay.shutdown().await;
    Ok(())
}

async fn start_relay(config: RelayConfig) -> Result<Relay, ClientError> {
    Relay::start(config)
        .await
        .map_err(|e| ClientError::Other(e.to_string()))
}

async fn sync_once(dir: &std::path::Path) -> Result<(), ClientError> {
    let options = SyncOptions {
        watch: false,
        timeout: Duration::from_secs(30),
    };
    sync::run(dir, options, std::future::pending())
        .await
        .map(|_| ())
}
