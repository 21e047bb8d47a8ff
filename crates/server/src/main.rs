//! `strowger`: the real-time communications server. `strowger serve` runs it with embedded
//! defaults; `strowger token create` mints access tokens; `strowger user …` manages the users in
//! the database; `strowger config` shows the effective configuration.

#![forbid(unsafe_code)]

mod auth;
mod config;
mod http;
mod https;
mod media;
mod metrics;
mod relay;
mod signal;
mod sip;
mod user_cmd;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::auth::{ApiKey, Grants};
use crate::config::Config;

#[derive(Parser)]
#[command(
    name = "strowger",
    version,
    about = "Strowger real-time communications server: WebRTC SFU, 1:1 and group calls."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server (HTTP API, web app, WebSocket signalling, WebRTC media).
    Serve(ServeArgs),
    /// Access tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Users (SIP credentials) in the database. Works whether or not a server is running.
    #[command(subcommand)]
    User(user_cmd::UserCmd),
    /// Print the effective configuration (defaults, file, environment, flags), secrets masked.
    Config(ShowConfigArgs),
}

/// Where configuration comes from. Every option has a dotted path (see `strowger config`) and an
/// environment variable `STROWGER_<PATH>` (dots as underscores, upper case).
#[derive(Args, Clone)]
pub(crate) struct ConfigArgs {
    /// TOML configuration file.
    #[arg(long, short = 'c', env = "STROWGER_CONFIG")]
    config: Option<PathBuf>,
    /// Set any option: `--set rooms.max_participants=8` (repeatable; wins over file and environment).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
}

#[derive(Args)]
struct ShowConfigArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// List every option's path and environment variable instead.
    #[arg(long)]
    keys: bool,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// HTTP listen address (http.listen).
    #[arg(long, value_name = "ADDR")]
    http_listen: Option<SocketAddr>,
    /// WebRTC UDP listen address (rtc.listen).
    #[arg(long, value_name = "ADDR")]
    rtc_listen: Option<SocketAddr>,
    /// Address advertised to browsers for media (rtc.public_ips; repeatable).
    #[arg(long = "rtc-public-ip", value_name = "IP")]
    rtc_public_ips: Vec<IpAddr>,
    /// Data directory (data_dir).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Log filter, e.g. `info` or `strowger=debug` (log).
    #[arg(long, value_name = "FILTER")]
    log: Option<String>,
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Mint an access token and print it.
    Create(TokenArgs),
}

#[derive(Args)]
struct TokenArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Identity (1-64 characters of letters, digits and ._-@+).
    #[arg(long)]
    identity: String,
    /// Display name.
    #[arg(long, default_value = "")]
    name: String,
    /// Room the token may join (`*` for any). Without it the token cannot join rooms.
    #[arg(long)]
    room: Option<String>,
    /// Validity in seconds (default: auth.default_ttl_secs).
    #[arg(long)]
    ttl: Option<u64>,
    /// Do not grant publishing.
    #[arg(long)]
    no_publish: bool,
    /// Do not grant subscribing.
    #[arg(long)]
    no_subscribe: bool,
    /// Do not grant screen sharing.
    #[arg(long)]
    no_screenshare: bool,
    /// Do not grant 1:1 calls.
    #[arg(long)]
    no_call: bool,
    /// Grant recording.
    #[arg(long)]
    record: bool,
    /// Grant administration (REST API, minting tokens).
    #[arg(long)]
    admin: bool,
}

pub(crate) fn load_config(a: &ConfigArgs, extra: Vec<String>) -> Result<Config, String> {
    let mut sets = extra;
    sets.extend(a.sets.iter().cloned());
    Config::load(a.config.as_deref(), std::env::vars(), &sets)
        .map_err(|e| format!("configuration error: {e}"))
}

/// The API key: configured, or the development key in the data directory.
fn api_key(cfg: &Config) -> Result<(ApiKey, bool, bool), String> {
    if !cfg.auth.api_key.is_empty() {
        return Ok((
            ApiKey::new(cfg.auth.api_key.clone(), cfg.auth.api_secret.clone()),
            false,
            false,
        ));
    }
    let (k, created) = auth::load_or_create_dev_key(&cfg.data_dir).map_err(|e| {
        format!(
            "cannot read or create the development API key in {}: {e}",
            cfg.data_dir.display()
        )
    })?;
    Ok((k, true, created))
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::Serve(a) => serve(a),
        Cmd::Token(TokenCmd::Create(a)) => token_create(a),
        Cmd::User(c) => user_cmd::run(c),
        Cmd::Config(a) if a.keys => {
            for k in Config::option_paths() {
                println!("{k:40} {}", config::env_name(&k));
            }
            0
        }
        Cmd::Config(a) => match load_config(&a.config, vec![]) {
            Ok(c) => {
                print!("{}", c.to_masked_toml());
                0
            }
            Err(e) => {
                eprintln!("{e}");
                2
            }
        },
    };
    std::process::exit(code);
}

fn token_create(a: TokenArgs) -> i32 {
    let cfg = match load_config(&a.config, vec![]) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let (key, _, _) = match api_key(&cfg) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    if let Some(r) = &a.room {
        if r != "*" && strowger_sfu::validate_room_name(r).is_err() {
            eprintln!(
                "--room: room names are 1-128 characters of letters, digits and -_.:@ (or *)"
            );
            return 2;
        }
    }
    let grants = Grants {
        room: a.room,
        publish: !a.no_publish,
        subscribe: !a.no_subscribe,
        screenshare: !a.no_screenshare,
        record: a.record,
        admin: a.admin,
        call: !a.no_call,
    };
    let ttl = a.ttl.unwrap_or(cfg.auth.default_ttl_secs);
    if ttl == 0 {
        eprintln!("--ttl must be at least 1 second");
        return 2;
    }
    match key.mint(&a.identity, &a.name, grants, ttl) {
        Ok(t) => {
            println!("{t}");
            0
        }
        Err(_) => {
            eprintln!("--identity must be 1-64 characters of letters, digits and ._-@+; --name at most 128 characters without control characters");
            2
        }
    }
}

fn serve(a: ServeArgs) -> i32 {
    let mut extra = Vec::new();
    if let Some(v) = a.http_listen {
        extra.push(format!("http.listen={v}"));
    }
    if let Some(v) = a.rtc_listen {
        extra.push(format!("rtc.listen={v}"));
    }
    if !a.rtc_public_ips.is_empty() {
        let ips: Vec<String> = a.rtc_public_ips.iter().map(|i| i.to_string()).collect();
        extra.push(format!("rtc.public_ips={}", ips.join(",")));
    }
    if let Some(v) = &a.data_dir {
        extra.push(format!("data_dir={}", v.display()));
    }
    if let Some(v) = &a.log {
        extra.push(format!("log={v}"));
    }
    // Flags win over --set only for their own keys; apply --set first then the flags.
    let mut sets = a.config.sets.clone();
    sets.extend(extra);
    let cfg = match Config::load(a.config.config.as_deref(), std::env::vars(), &sets) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return 2;
        }
    };
    init_logging(&cfg);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return 1;
        }
    };
    match rt.block_on(run(cfg)) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("strowger: {e}");
            1
        }
    }
}

fn init_logging(cfg: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(&cfg.log).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: log files and journald get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        .with_ansi(ansi);
    if cfg.log_format == "json" {
        b.json().init();
    } else {
        b.init();
    }
}

/// Host candidates: configured public IPs, the listen IP when specific, else every interface.
fn candidates(cfg: &Config, port: u16) -> Vec<SocketAddr> {
    let ips: Vec<IpAddr> = if !cfg.rtc.public_ips.is_empty() {
        cfg.rtc.public_ips.clone()
    } else if !cfg.rtc.listen.ip().is_unspecified() {
        vec![cfg.rtc.listen.ip()]
    } else {
        let mut v: Vec<IpAddr> = if_addrs::get_if_addrs()
            .map(|l| {
                l.into_iter()
                    .map(|i| i.ip())
                    .filter(|ip| ip.is_ipv4())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v.dedup();
        v
    };
    ips.into_iter()
        .map(|ip| SocketAddr::new(ip, port))
        .collect()
}

async fn run(cfg: Config) -> Result<(), String> {
    let cfg = Arc::new(cfg);
    let (key, dev, created) = api_key(&cfg)?;
    if created {
        tracing::info!(api_key = %key.id, dir = %cfg.data_dir.display(), "development API key created (secret stored in api-key.toml)");
    }
    let store = open_store(&cfg).await?;
    let metrics = Arc::new(metrics::Metrics::default());
    let (media_tx, media_rx) = tokio::sync::oneshot::channel();
    let hub = signal::hub::start(cfg.clone(), media_rx, metrics.clone());

    // Bind media first to learn its port, then advertise it.
    let udp = media::bind_udp(cfg.rtc.listen)
        .map_err(|e| format!("cannot bind WebRTC UDP {}: {e}", cfg.rtc.listen))?;
    let port = udp.local_addr().map_err(|e| e.to_string())?.port();
    let sfu_cfg = strowger_sfu::SfuConfig {
        candidates: candidates(&cfg, port),
        max_participants: cfg.rtc.max_participants,
        max_rooms: cfg.rtc.max_rooms,
        default_room: strowger_sfu::RoomOptions {
            max_participants: cfg.rooms.max_participants,
            empty_timeout: Duration::from_secs(cfg.rooms.empty_timeout_secs),
        },
        auto_create_rooms: cfg.rooms.auto_create,
        initial_estimate_bps: cfg.rtc.initial_estimate_bps,
        media_timeout: Duration::from_secs(cfg.rtc.media_timeout_secs.max(1)),
        ..Default::default()
    };
    if sfu_cfg.candidates.is_empty() {
        return Err("no address to advertise for media: set rtc.public_ips".into());
    }
    tracing::info!(candidates = ?sfu_cfg.candidates, "WebRTC media advertised");
    let (media, rtc_addr) = media::start(udp, sfu_cfg, hub.clone(), metrics.clone())
        .map_err(|e| format!("cannot use the WebRTC UDP socket: {e}"))?;
    let _ = media_tx.send(media.clone());

    let relay = relay::Relay::new(cfg.relay.options(), metrics.relay.clone());
    let sip = sip::start(cfg.sip.clone(), store.clone(), relay, metrics.sip.clone()).await?;

    let ready = Arc::new(AtomicBool::new(false));
    let state = http::AppState {
        sip,
        cfg: cfg.clone(),
        key: Arc::new(key.clone()),
        hub,
        media,
        metrics,
        ready: ready.clone(),
        store: store.clone(),
    };
    let listener = tokio::net::TcpListener::bind(cfg.http.listen)
        .await
        .map_err(|e| format!("cannot bind HTTP {}: {e}", cfg.http.listen))?;
    let http_addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(http = %http_addr, rtc = %rtc_addr, sip = ?state.sip.local, sip_tls = ?state.sip.tls_local, "strowger listening");
    ready.store(true, Ordering::Relaxed);

    if dev {
        let scheme = if cfg.http.tls_cert.is_empty() {
            "http"
        } else {
            "https"
        };
        let base = if !cfg.http.public_url.is_empty() {
            cfg.http.public_url.trim_end_matches('/').to_string()
        } else if http_addr.ip().is_unspecified() {
            format!("{scheme}://127.0.0.1:{}", http_addr.port())
        } else {
            format!("{scheme}://{http_addr}")
        };
        let grants = Grants {
            room: Some("*".into()),
            publish: true,
            subscribe: true,
            screenshare: true,
            record: true,
            admin: true,
            call: true,
        };
        match key.mint("admin", "Admin", grants, 24 * 3600) {
            Ok(t) => println!("\nStrowger is running. Open the web app (development key, valid 24 h):\n\n  {base}/#token={t}\n"),
            Err(e) => tracing::warn!(error = %e, "could not mint the development link"),
        }
    }

    let app = http::router(state);
    let shutdown = async move {
        shutdown_signal().await;
        ready.store(false, Ordering::Relaxed);
        tracing::info!("shutting down");
    };
    let served = if cfg.http.tls_cert.is_empty() {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<https::PeerAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
    } else {
        // WebSockets need HTTP/1.1: only that is offered.
        let tls = sip::tls::load(
            &cfg.http.tls_cert,
            &cfg.http.tls_key,
            "http.tls_cert",
            "http.tls_key",
            &[b"http/1.1"],
        )?;
        let listener = https::TlsListener::new(listener, tls).map_err(|e| e.to_string())?;
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<https::PeerAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
    }
    .map_err(|e| format!("HTTP server failed: {e}"));
    // Checkpoints the WAL into the database file.
    store.close().await;
    served
}

/// Opens the database (creating it and applying migrations), and says what is in it.
async fn open_store(cfg: &Config) -> Result<strowger_store::Store, String> {
    let location = cfg.store_location();
    let store = strowger_store::Store::open(&location, &cfg.sip.realm)
        .await
        .map_err(|e| e.to_string())?;
    let users = store.count_users().await.map_err(|e| e.to_string())?;
    tracing::info!(database = %location, users, realm = %cfg.sip.realm, "database open");
    let stale = store
        .count_users_in_other_realms()
        .await
        .map_err(|e| e.to_string())?;
    if stale > 0 {
        tracing::warn!(
            users = stale,
            realm = %cfg.sip.realm,
            "users have password hashes for another realm (sip.realm changed?) and cannot authenticate until their password is set again (strowger user passwd)"
        );
    }
    Ok(store)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
