//! `partnerplan-relay install-service`: the relay as a systemd service,
//! run as its own user with its own data folder. The unit it writes is
//! [`unit`]; `deploy/partnerplan-relay.service` in the repository is the
//! same unit with the defaults (a test keeps them equal).

use std::path::{Path, PathBuf};
use std::process::Command;

/// What `install-service` is told.
#[derive(clap::Args, Debug, Clone)]
pub struct InstallOptions {
    /// The user the relay runs as; made (a system user, no login) if
    /// missing.
    #[arg(long, default_value = "partnerplan-relay")]
    pub user: String,
    /// The relay's data folder, owned by that user and readable by no one
    /// else.
    #[arg(long, default_value = "/var/lib/partnerplan-relay")]
    pub data_dir: PathBuf,
    /// The address and port the service listens on.
    #[arg(long, default_value = "0.0.0.0:7171")]
    pub listen: String,
    /// The address schools reach the relay at, written into invites.
    #[arg(long)]
    pub public_url: Option<String>,
    /// The program the service runs (default: this one).
    #[arg(long)]
    pub program: Option<PathBuf>,
    /// Where systemd reads units from.
    #[arg(long, default_value = "/etc/systemd/system")]
    pub unit_dir: PathBuf,
    /// Only show the unit and the steps; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub const UNIT_NAME: &str = "partnerplan-relay.service";

/// The systemd unit. Backups go into the data folder's `backups` every
/// day, the newest 14 kept; logs go to the journal without colours.
pub fn unit(
    program: &Path,
    user: &str,
    data_dir: &Path,
    listen: &str,
    public_url: Option<&str>,
) -> String {
    let public = public_url
        .map(|url| format!(" --public-url {url}"))
        .unwrap_or_default();
    format!(
        "# The partnerplan relay, as a systemd service (partnerplan-relay install-service
# writes this file; the repository keeps a copy in deploy/).
[Unit]
Description=partnerplan relay: partner schools sync their shared documents through it
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User={user}
Group={user}
ExecStart={program} --data {data} serve --listen {listen}{public} --backup-every 24h --backup-keep 14
# SIGTERM: the relay closes connections and finishes its writes.
KillSignal=SIGTERM
TimeoutStopSec=30
Restart=on-failure
RestartSec=5
Environment=PARTNERPLAN_LOG=info
# Its own data folder, and nothing else to write.
UMask=0077
ReadWritePaths={data}
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
NoNewPrivileges=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
LockPersonality=yes

[Install]
WantedBy=multi-user.target
",
        program = program.display(),
        data = data_dir.display(),
    )
}

/// The steps, each a command, in order.
fn steps(options: &InstallOptions, unit_path: &Path) -> Vec<Vec<String>> {
    let user = options.user.clone();
    let data = options.data_dir.display().to_string();
    vec![
        vec![
            "useradd".into(),
            "--system".into(),
            "--user-group".into(),
            "--home-dir".into(),
            data.clone(),
            "--shell".into(),
            "/usr/sbin/nologin".into(),
            user.clone(),
        ],
        vec![
            "install".into(),
            "-d".into(),
            "-m".into(),
            "0700".into(),
            "-o".into(),
            user.clone(),
            "-g".into(),
            user,
            data,
        ],
        vec!["systemctl".into(), "daemon-reload".into()],
        vec![
            "systemctl".into(),
            "enable".into(),
            "--now".into(),
            unit_path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| UNIT_NAME.into()),
        ],
    ]
}

pub fn install(options: &InstallOptions) -> Result<(), String> {
    let program = match &options.program {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .and_then(std::fs::canonicalize)
            .map_err(|e| {
                format!("could not tell where this program is ({e}); name it with --program")
            })?,
    };
    let text = unit(
        &program,
        &options.user,
        &options.data_dir,
        &options.listen,
        options.public_url.as_deref(),
    );
    let unit_path = options.unit_dir.join(UNIT_NAME);
    let steps = steps(options, &unit_path);
    if options.dry_run {
        println!("Would write {}:\n\n{text}", unit_path.display());
        println!("Then run, as root:");
        for step in &steps {
            println!("  {}", step.join(" "));
        }
        println!("(useradd is skipped if the user {} exists.)", options.user);
        return Ok(());
    }
    let user_exists = Command::new("id")
        .arg("-u")
        .arg(&options.user)
        .output()
        .is_ok_and(|o| o.status.success());
    std::fs::write(&unit_path, &text).map_err(|e| {
        format!(
            "could not write {}: {e}. Run this as root (sudo), or use --dry-run to see the steps.",
            unit_path.display()
        )
    })?;
    println!("Wrote {}.", unit_path.display());
    for step in steps.iter().skip(usize::from(user_exists)) {
        let status = Command::new(&step[0]).args(&step[1..]).status();
        match status {
            Ok(s) if s.success() => println!("Done: {}", step.join(" ")),
            Ok(s) => {
                return Err(format!(
                    "`{}` failed ({s}). Nothing after it was done.",
                    step.join(" ")
                ));
            }
            Err(e) => return Err(format!("could not run `{}`: {e}.", step[0])),
        }
    }
    println!(
        "The relay runs as {user}, with its data in {data}, and starts with the computer. Its log: journalctl -u partnerplan-relay. Admin commands run as its user, for example:\n  sudo -u {user} {program} --data {data} partnership create \"Our partnership\"\nand its admin pages open at http://127.0.0.1:{port}/admin on this computer.",
        user = options.user,
        data = options.data_dir.display(),
        program = program.display(),
        port = options.listen.rsplit(':').next().unwrap_or("7171"),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The unit in the repository is the one `install-service` writes with
    /// its defaults, so the two never drift apart.
    #[test]
    fn the_repositorys_unit_is_the_one_installed() {
        let kept = include_str!("../../deploy/partnerplan-relay.service");
        let made = unit(
            Path::new("/usr/local/bin/partnerplan-relay"),
            "partnerplan-relay",
            Path::new("/var/lib/partnerplan-relay"),
            "0.0.0.0:7171",
            None,
        );
        assert_eq!(kept, made);
        assert!(made.contains("User=partnerplan-relay"));
        assert!(made.contains("ReadWritePaths=/var/lib/partnerplan-relay"));
    }
}
