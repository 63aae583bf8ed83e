//! A private PostgreSQL cluster, started on demand when no DATABASE_URL is set.
//!
//! Used by `gateway serve`, `gateway migrate` and the test suite. The cluster
//! listens on a Unix socket in its data directory only (no TCP) and trusts every
//! local connection, so it must never hold anything but throwaway data.
//!
//! Not on a loopback port: the kernel picks a free port from its ephemeral range,
//! the same range clients' own ends come from, and a client dialling such a port
//! while the server is down can be connected to itself (127.0.0.1:P <-> 127.0.0.1:P),
//! holding the port so that the server cannot start again until it lets go. A
//! socket file cannot be taken that way. Clusters started by earlier versions on
//! 127.0.0.1 are still reused as they are, over TCP.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

const DEFAULT_BINDIR: &str = "/usr/lib/postgresql/15/bin";
const BINDIR_ENV: &str = "GATEWAY_PG_BINDIR";
/// Seconds pg_ctl waits for start/stop, and we wait for a foreign postmaster to become ready.
const TIMEOUT_SECS: u64 = 60;
const START_ATTEMPTS: u32 = 5;
/// The port of the socket file's name (`.s.PGSQL.<port>`): with no TCP listener it is only a
/// name, and each cluster has a socket directory of its own.
const SOCKET_PORT: u16 = 5432;
/// The longest socket directory used as is: the socket's path (`<dir>/.s.PGSQL.5432`) must
/// fit `sun_path` (107 bytes on Linux, fewer elsewhere), with room to spare.
const MAX_SOCKET_DIR: usize = 90;
/// Client/server variables that would redirect our commands elsewhere.
const PG_ENV_VARS: &[&str] = &[
    "PGDATA",
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGOPTIONS",
    "PGSSLMODE",
    "PGTARGETSESSIONATTRS",
];

/// How to run the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterOptions {
    /// fsync=off, synchronous_commit=off, full_page_writes=off: for throwaway test clusters.
    pub unsafe_fast: bool,
    /// max_connections (default 200)
    pub max_connections: u32,
    /// log_connections=on: every connection the server receives is in its log (the fault
    /// tests count them).
    pub log_connections: bool,
    /// track_commit_timestamp=on: `pg_xact_commit_timestamp(xmin)` tells when a row's
    /// transaction committed (the bench times commit → subscriber delivery with it).
    pub commit_timestamps: bool,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            unsafe_fast: false,
            max_connections: 200,
            log_connections: false,
            commit_timestamps: false,
        }
    }
}

/// Where clients reach the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// The socket directory (`<dir>/.s.PGSQL.<port>`).
    Socket(PathBuf),
    /// 127.0.0.1: a cluster started by an earlier version, reused as it is.
    Loopback,
}

/// A running private cluster. Dropping it does not stop the server: later
/// processes reuse it.
#[derive(Debug, Clone)]
pub struct PrivateCluster {
    /// Where the cluster really is (differs from `requested_dir` when `relocated`).
    pub data_dir: PathBuf,
    /// The directory the caller asked for, made absolute.
    pub requested_dir: PathBuf,
    /// True when the postgres user could not reach `requested_dir`, so the
    /// cluster lives under the temp dir instead.
    pub relocated: bool,
    /// Server log (`<data_dir>/../<name>.log`).
    pub log_file: PathBuf,
    /// The socket file's port (or the TCP port of a reused older cluster).
    pub port: u16,
    pub endpoint: Endpoint,
    /// True if this call started the postmaster, false if it reused a running one.
    pub started_here: bool,
    lock_file: PathBuf,
    workdir: PathBuf,
    bindir: PathBuf,
    run_as: Option<SystemUser>,
}

#[derive(Debug)]
pub enum ClusterError {
    Io {
        context: String,
        source: io::Error,
    },
    BinariesNotFound {
        bindir: PathBuf,
    },
    NoPostgresUser,
    InvalidPath {
        path: PathBuf,
    },
    NotTraversable {
        requested: PathBuf,
        fallback: PathBuf,
    },
    NotACluster {
        data_dir: PathBuf,
    },
    Initdb {
        data_dir: PathBuf,
        output: String,
    },
    Start {
        data_dir: PathBuf,
        log_file: PathBuf,
        output: String,
        log_tail: String,
    },
    NotReady {
        data_dir: PathBuf,
        pid: i32,
        port: Option<u16>,
        host: String,
    },
    Stop {
        data_dir: PathBuf,
        output: String,
    },
}

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClusterError::Io { context, source } => write!(f, "{context}: {source}"),
            ClusterError::BinariesNotFound { bindir } => write!(
                f,
                "PostgreSQL binaries not found in {} (install PostgreSQL 15, put pg_config on PATH, \
                 set {BINDIR_ENV}, or set DATABASE_URL)",
                bindir.display()
            ),
            ClusterError::NoPostgresUser => write!(
                f,
                "running as root, but there is no `postgres` user in /etc/passwd to run the private \
                 PostgreSQL cluster as (initdb and postgres refuse to run as root)"
            ),
            ClusterError::InvalidPath { path } => write!(
                f,
                "{} cannot be a PostgreSQL data directory (it needs a parent and a final name)",
                path.display()
            ),
            ClusterError::NotTraversable {
                requested,
                fallback,
            } => write!(
                f,
                "the postgres user can reach neither {} nor the fallback {}",
                requested.display(),
                fallback.display()
            ),
            ClusterError::NotACluster { data_dir } => write!(
                f,
                "{} is not empty but holds no PostgreSQL cluster (no PG_VERSION); \
                 remove it or choose another directory",
                data_dir.display()
            ),
            ClusterError::Initdb { data_dir, output } => {
                write!(f, "initdb failed for {}:\n{output}", data_dir.display())
            }
            ClusterError::Start {
                data_dir,
                log_file,
                output,
                log_tail,
            } => write!(
                f,
                "could not start PostgreSQL in {}:\n{output}\n--- end of {} ---\n{log_tail}",
                data_dir.display(),
                log_file.display()
            ),
            ClusterError::NotReady {
                data_dir,
                pid,
                port,
                host,
            } => {
                let port = port.map_or_else(|| "unknown".to_string(), |p| p.to_string());
                write!(
                    f,
                    "a postmaster (PID {pid}) is running in {} but did not accept connections on \
                     {host} port {port} within {TIMEOUT_SECS}s",
                    data_dir.display()
                )
            }
            ClusterError::Stop { data_dir, output } => write!(
                f,
                "could not stop PostgreSQL in {}:\n{output}",
                data_dir.display()
            ),
        }
    }
}

impl std::error::Error for ClusterError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClusterError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

type Result<T> = std::result::Result<T, ClusterError>;

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> ClusterError {
    let context = context.into();
    move |source| ClusterError::Io { context, source }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct SystemUser {
    uid: u32,
    gid: u32,
    home: PathBuf,
}

/// Where everything for one cluster goes: data dir plus siblings.
struct Layout {
    data_dir: PathBuf,
    parent: PathBuf,
    name: String,
    relocated: bool,
}

impl Layout {
    fn new(data_dir: PathBuf, relocated: bool) -> Result<Layout> {
        let (Some(parent), Some(name)) = (data_dir.parent(), data_dir.file_name()) else {
            return Err(ClusterError::InvalidPath { path: data_dir });
        };
        Ok(Layout {
            parent: parent.to_path_buf(),
            name: name.to_string_lossy().into_owned(),
            data_dir,
            relocated,
        })
    }

    fn sibling(&self, suffix: &str) -> PathBuf {
        self.parent.join(format!("{}.{suffix}", self.name))
    }
}

impl PrivateCluster {
    /// Initialises the cluster if `dir` is empty or missing, reuses it if a
    /// postmaster is already serving it, and starts it otherwise.
    /// Safe to call from several processes at once for the same directory.
    pub fn ensure(dir: &Path, opts: &ClusterOptions) -> Result<PrivateCluster> {
        let requested = std::path::absolute(dir)
            .map_err(io_err(format!("cannot resolve {}", dir.display())))?;
        let bindir = find_bindir()?;
        let run_as = if is_root() {
            Some(postgres_user()?)
        } else {
            None
        };
        let layout = choose_layout(&requested, &bindir, run_as.as_ref())?;
        let lock_file = layout.sibling("lock");
        let _lock = lock(&lock_file)?;

        if !layout.data_dir.join("PG_VERSION").is_file() {
            initdb(&layout, &bindir, run_as.as_ref())?;
        }

        let mut cluster = PrivateCluster {
            log_file: layout.sibling("log"),
            data_dir: layout.data_dir,
            requested_dir: requested,
            relocated: layout.relocated,
            port: 0,
            endpoint: Endpoint::Loopback,
            started_here: false,
            lock_file,
            workdir: layout.parent,
            bindir,
            run_as,
        };
        match cluster.wait_for_running()? {
            Some((port, endpoint)) => {
                cluster.port = port;
                cluster.endpoint = endpoint;
            }
            None => {
                let dir = cluster.socket_dir()?;
                cluster.port = cluster.start(opts, &dir)?;
                cluster.endpoint = Endpoint::Socket(dir);
                cluster.started_here = true;
            }
        }
        Ok(cluster)
    }

    /// `postgres://postgres@<socket dir, percent-encoded>:5432/<database>`, which libpq,
    /// tokio-postgres and node-postgres all read as a Unix socket.
    pub fn url(&self, database: &str) -> String {
        self.url_as("postgres", database)
    }

    /// The same, logging in as `user`.
    pub fn url_as(&self, user: &str, database: &str) -> String {
        format!("postgres://{user}@{}:{}/{database}", self.host(), self.port)
    }

    /// The host part of URLs: the socket directory percent-encoded, or 127.0.0.1.
    fn host(&self) -> String {
        match &self.endpoint {
            Endpoint::Socket(dir) => percent_encode(dir),
            Endpoint::Loopback => "127.0.0.1".to_string(),
        }
    }

    /// The directory for the socket: the data directory when its path is short enough and
    /// plain, else a directory of its own under the temp dir, named after the data dir.
    fn socket_dir(&self) -> Result<PathBuf> {
        let plain = |p: &Path| {
            p.as_os_str().len() <= MAX_SOCKET_DIR
                && p.as_os_str()
                    .as_bytes()
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || b"/._-+".contains(b))
        };
        if plain(&self.data_dir) {
            return Ok(self.data_dir.clone());
        }
        let dir = Path::new("/tmp").join(format!(
            "gateway-pg-{:016x}.s",
            fnv1a(self.data_dir.as_os_str().as_bytes())
        ));
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err(format!("cannot create {}", dir.display()))(e)),
        }
        if let Some(user) = &self.run_as {
            chown(&dir, user)?;
        }
        Ok(dir)
    }

    /// `pg_ctl stop -m fast`. Succeeds if the server is already down.
    pub fn stop(&self) -> Result<()> {
        let _lock = lock(&self.lock_file)?;
        let Some(info) = read_pid_file(&self.data_dir)? else {
            return Ok(());
        };
        if info
            .pid
            .is_some_and(|pid| !postmaster_alive(pid, &self.data_dir))
        {
            remove_stale_pid_file(&self.data_dir)?;
            return Ok(());
        }
        let out = self
            .pg_command("pg_ctl")
            .arg("stop")
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-m", "fast", "-w", "-t", &TIMEOUT_SECS.to_string()])
            .output()
            .map_err(io_err("cannot run pg_ctl stop"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(ClusterError::Stop {
                data_dir: self.data_dir.clone(),
                output: output_text(&out),
            })
        }
    }

    fn pg_command(&self, program: &str) -> Command {
        pg_command(&self.bindir, program, self.run_as.as_ref(), &self.workdir)
    }

    /// Port and endpoint of a postmaster already serving the data dir, waiting while one is
    /// starting up or shutting down; clears a stale postmaster.pid.
    fn wait_for_running(&self) -> Result<Option<(u16, Endpoint)>> {
        let deadline = Instant::now() + Duration::from_secs(TIMEOUT_SECS);
        loop {
            let Some(info) = read_pid_file(&self.data_dir)? else {
                return Ok(None);
            };
            // A half-written pid file has no pid yet: treat it as starting.
            if let Some(pid) = info.pid {
                if !postmaster_alive(pid, &self.data_dir) {
                    remove_stale_pid_file(&self.data_dir)?;
                    return Ok(None);
                }
                let endpoint = info.endpoint();
                if let Some(port) = info
                    .port
                    .filter(|p| pg_isready(&self.bindir, &endpoint, *p))
                {
                    return Ok(Some((port, endpoint)));
                }
            }
            if Instant::now() >= deadline {
                return Err(ClusterError::NotReady {
                    data_dir: self.data_dir.clone(),
                    pid: info.pid.unwrap_or(0),
                    port: info.port,
                    host: endpoint_host(&info.endpoint()),
                });
            }
            sleep(Duration::from_millis(200));
        }
    }

    fn start(&self, opts: &ClusterOptions, socket_dir: &Path) -> Result<u16> {
        // pg_ctl opens the log as the server user, so it must own the file.
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(&self.log_file)
            .map_err(io_err(format!("cannot create {}", self.log_file.display())))?;
        if let Some(user) = &self.run_as {
            chown(&self.log_file, user)?;
        }

        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = SOCKET_PORT;
            let log_offset = fs::metadata(&self.log_file).map_or(0, |m| m.len());
            let out = self
                .pg_command("pg_ctl")
                .arg("start")
                .arg("-D")
                .arg(&self.data_dir)
                .arg("-l")
                .arg(&self.log_file)
                .args(["-w", "-t", &TIMEOUT_SECS.to_string()])
                .arg("-o")
                .arg(server_options(port, socket_dir, opts))
                .output()
                .map_err(io_err("cannot run pg_ctl start"))?;
            if out.status.success() {
                return Ok(port);
            }
            let log_tail = log_tail(&self.log_file, log_offset);
            // Port races and leftovers of a killed postmaster (its children still
            // attached to shared memory, or a reused pid) clear up within moments.
            let transient = [
                "could not bind",
                "Address already in use",
                "is still in use",
                "already exists",
            ]
            .iter()
            .any(|s| log_tail.contains(s));
            if !transient || attempt >= START_ATTEMPTS {
                return Err(ClusterError::Start {
                    data_dir: self.data_dir.clone(),
                    log_file: self.log_file.clone(),
                    output: output_text(&out),
                    log_tail,
                });
            }
            let pid = read_pid_file(&self.data_dir)?.and_then(|i| i.pid);
            if pid.is_some_and(|pid| !postmaster_alive(pid, &self.data_dir)) {
                remove_stale_pid_file(&self.data_dir)?;
            }
            sleep(Duration::from_millis(300 * u64::from(attempt)));
        }
    }
}

fn server_options(port: u16, socket_dir: &Path, opts: &ClusterOptions) -> String {
    // pg_ctl hands -o to /bin/sh, hence the shell quoting of the empty value; the socket
    // directory is plain (see `socket_dir`), so it needs none.
    let mut s = format!(
        "-p {port} -c listen_addresses='' -c unix_socket_directories={} -c max_connections={}",
        socket_dir.display(),
        opts.max_connections
    );
    if opts.unsafe_fast {
        s.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
    }
    if opts.log_connections {
        s.push_str(" -c log_connections=on");
    }
    if opts.commit_timestamps {
        s.push_str(" -c track_commit_timestamp=on");
    }
    s
}

/// A path as the host of a connection URL: every byte but unreserved ones percent-encoded.
fn percent_encode(path: &Path) -> String {
    let mut out = String::new();
    for b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"._-~".contains(b) {
            out.push(*b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// How pg_isready and messages name an endpoint's host.
fn endpoint_host(endpoint: &Endpoint) -> String {
    match endpoint {
        Endpoint::Socket(dir) => dir.display().to_string(),
        Endpoint::Loopback => "127.0.0.1".to_string(),
    }
}

fn find_bindir() -> Result<PathBuf> {
    let bindir = if let Some(dir) = std::env::var_os(BINDIR_ENV).filter(|d| !d.is_empty()) {
        PathBuf::from(dir)
    } else {
        Command::new("pg_config")
            .arg("--bindir")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
            .map_or_else(|| PathBuf::from(DEFAULT_BINDIR), PathBuf::from)
    };
    let complete = ["initdb", "pg_ctl", "postgres", "pg_isready"]
        .iter()
        .all(|b| bindir.join(b).is_file());
    if complete {
        Ok(bindir)
    } else {
        Err(ClusterError::BinariesNotFound { bindir })
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn postgres_user() -> Result<SystemUser> {
    let passwd = fs::read_to_string("/etc/passwd").map_err(io_err("cannot read /etc/passwd"))?;
    passwd
        .lines()
        .find_map(|line| parse_passwd_line(line, "postgres"))
        .ok_or(ClusterError::NoPostgresUser)
}

fn parse_passwd_line(line: &str, name: &str) -> Option<SystemUser> {
    let fields: Vec<&str> = line.split(':').collect();
    if fields.len() < 6 || fields[0] != name {
        return None;
    }
    Some(SystemUser {
        uid: fields[2].parse().ok()?,
        gid: fields[3].parse().ok()?,
        home: PathBuf::from(fields[5]),
    })
}

fn pg_command(bindir: &Path, program: &str, run_as: Option<&SystemUser>, cwd: &Path) -> Command {
    let mut cmd = Command::new(bindir.join(program));
    // The caller's cwd may be unreadable to the postgres user (e.g. /root).
    cmd.current_dir(cwd).stdin(Stdio::null());
    for var in PG_ENV_VARS {
        cmd.env_remove(var);
    }
    if let Some(user) = run_as {
        cmd.uid(user.uid)
            .gid(user.gid)
            .env("HOME", &user.home)
            .env("USER", "postgres")
            .env("LOGNAME", "postgres");
    }
    cmd
}

/// Whether `user` can chdir into `dir`: a real attempt, so ACLs and modes of
/// every ancestor all count.
fn can_enter(dir: &Path, bindir: &Path, user: &SystemUser) -> bool {
    pg_command(bindir, "pg_ctl", Some(user), dir)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn choose_layout(requested: &Path, bindir: &Path, run_as: Option<&SystemUser>) -> Result<Layout> {
    let layout = Layout::new(requested.to_path_buf(), false)?;
    let Some(user) = run_as else {
        create_dir_all(&layout.parent)?;
        return Ok(layout);
    };
    // Probe before creating anything, so a refused path is left untouched.
    let existing = layout.parent.ancestors().find(|p| p.is_dir());
    if existing.is_some_and(|p| can_enter(p, bindir, user)) {
        create_dir_all(&layout.parent)?;
        if can_enter(&layout.parent, bindir, user) {
            return Ok(layout);
        }
    }

    let base = std::env::temp_dir().join(format!(
        "gateway-pg-{:016x}",
        fnv1a(requested.as_os_str().as_bytes())
    ));
    create_shared_dir(&base)?;
    let fallback = Layout::new(base.join(&layout.name), true)?;
    if can_enter(&base, bindir, user) {
        Ok(fallback)
    } else {
        Err(ClusterError::NotTraversable {
            requested: requested.to_path_buf(),
            fallback: fallback.data_dir,
        })
    }
}

fn create_dir_all(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(io_err(format!("cannot create {}", dir.display())))
}

/// Creates a root-owned, world-traversable directory in the (shared) temp dir,
/// refusing one that someone else planted there.
fn create_shared_dir(dir: &Path) -> Result<()> {
    match fs::DirBuilder::new().mode(0o755).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err(format!("cannot create {}", dir.display()))(e)),
    }
    let meta =
        fs::symlink_metadata(dir).map_err(io_err(format!("cannot stat {}", dir.display())))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if !meta.is_dir() || meta.uid() != euid {
        return Err(ClusterError::Io {
            context: format!("refusing to use {}", dir.display()),
            source: io::Error::new(
                io::ErrorKind::PermissionDenied,
                "not a directory owned by the current user",
            ),
        });
    }
    // Explicit chmod: a restrictive umask would otherwise lock postgres out.
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
        .map_err(io_err(format!("cannot chmod {}", dir.display())))
}

fn chown(path: &Path, user: &SystemUser) -> Result<()> {
    std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid)).map_err(io_err(format!(
        "cannot chown {} to postgres",
        path.display()
    )))
}

/// Stable across builds, unlike std's DefaultHasher: two binaries must agree.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn lock(path: &Path) -> Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io_err(format!("cannot open lock file {}", path.display())))?;
    loop {
        // SAFETY: the fd is valid for as long as `file` lives; the lock goes with it.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(file);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(io_err(format!("cannot lock {}", path.display()))(err));
        }
    }
}

/// initdb into a sibling directory and rename it into place, so a killed
/// initdb never leaves a half-made cluster behind.
fn initdb(layout: &Layout, bindir: &Path, run_as: Option<&SystemUser>) -> Result<()> {
    let data_dir = &layout.data_dir;
    if data_dir.exists() {
        let mut entries = fs::read_dir(data_dir)
            .map_err(io_err(format!("cannot read {}", data_dir.display())))?;
        if entries.next().is_some() {
            return Err(ClusterError::NotACluster {
                data_dir: data_dir.clone(),
            });
        }
    }
    let tmp = layout.sibling("initdb-tmp");
    let mut outputs = Vec::new();
    // C.UTF-8 is missing on some systems; plain C always exists.
    for locale in ["C.UTF-8", "C"] {
        remove_dir_if_exists(&tmp)?;
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&tmp)
            .map_err(io_err(format!("cannot create {}", tmp.display())))?;
        if let Some(user) = run_as {
            chown(&tmp, user)?;
        }
        let out = pg_command(bindir, "initdb", run_as, &layout.parent)
            .arg("-D")
            .arg(&tmp)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8"])
            .arg(format!("--locale={locale}"))
            .output()
            .map_err(io_err("cannot run initdb"))?;
        if out.status.success() {
            // rename(2) replaces an empty directory, covering a pre-created data dir.
            fs::rename(&tmp, data_dir).map_err(io_err(format!(
                "cannot move {} to {}",
                tmp.display(),
                data_dir.display()
            )))?;
            return Ok(());
        }
        outputs.push(format!("[--locale={locale}]\n{}", output_text(&out)));
    }
    remove_dir_if_exists(&tmp)?;
    Err(ClusterError::Initdb {
        data_dir: data_dir.clone(),
        output: outputs.join("\n"),
    })
}

fn remove_dir_if_exists(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(io_err(format!("cannot remove {}", dir.display()))(e))
        }
        _ => Ok(()),
    }
}

#[derive(Debug, PartialEq, Eq)]
struct PidFile {
    pid: Option<i32>,
    port: Option<u16>,
    /// The first socket directory, if the server has one.
    socket_dir: Option<PathBuf>,
}

impl PidFile {
    fn endpoint(&self) -> Endpoint {
        match &self.socket_dir {
            Some(dir) => Endpoint::Socket(dir.clone()),
            None => Endpoint::Loopback,
        }
    }
}

/// postmaster.pid: line 1 is the PID, line 4 the port, line 5 the first socket directory.
fn parse_pid_file(text: &str) -> PidFile {
    let lines: Vec<&str> = text.lines().collect();
    let field = |i: usize| lines.get(i).map(|l| l.trim());
    PidFile {
        pid: field(0).and_then(|l| l.parse().ok()).filter(|p| *p > 0),
        port: field(3).and_then(|l| l.parse().ok()).filter(|p| *p > 0),
        socket_dir: field(4).filter(|l| !l.is_empty()).map(PathBuf::from),
    }
}

fn read_pid_file(data_dir: &Path) -> Result<Option<PidFile>> {
    let path = data_dir.join("postmaster.pid");
    match fs::read_to_string(&path) {
        Ok(text) => Ok(Some(parse_pid_file(&text))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(format!("cannot read {}", path.display()))(e)),
    }
}

fn remove_stale_pid_file(data_dir: &Path) -> Result<()> {
    let path = data_dir.join("postmaster.pid");
    match fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(io_err(format!("cannot remove stale {}", path.display()))(e))
        }
        _ => Ok(()),
    }
}

/// Whether `pid` is a live postmaster for `data_dir`. On Linux, zombies (no
/// init reaps them in some containers) and recycled PIDs count as dead: both
/// would make postgres refuse to start over a stale postmaster.pid.
fn postmaster_alive(pid: i32, data_dir: &Path) -> bool {
    if Path::new("/proc/self").exists() {
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        if !is_live_postgres_stat(&stat) {
            return false;
        }
        // Unreadable cwd (another user's process, locked-down /proc): trust comm.
        return fs::read_link(format!("/proc/{pid}/cwd")).map_or(true, |cwd| {
            fs::canonicalize(data_dir).is_ok_and(|d| d == cwd)
        });
    }
    // SAFETY: signal 0 only checks for existence; nothing is delivered.
    if unsafe { libc::kill(pid, 0) } == 0 {
        return true;
    }
    io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// /proc/PID/stat is "PID (COMM) STATE ..."; COMM may itself hold ')'.
fn is_live_postgres_stat(stat: &str) -> bool {
    let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
        return false;
    };
    let comm = stat.get(open + 1..close).unwrap_or("");
    let state = stat
        .get(close + 1..)
        .unwrap_or("")
        .trim_start()
        .chars()
        .next();
    matches!(comm, "postgres" | "postmaster") && !matches!(state, Some('Z' | 'X' | 'x') | None)
}

fn pg_isready(bindir: &Path, endpoint: &Endpoint, port: u16) -> bool {
    // -U/-d postgres so the probe does not log "role does not exist".
    Command::new(bindir.join("pg_isready"))
        .arg("-q")
        .arg("-h")
        .arg(endpoint_host(endpoint))
        .args(["-p", &port.to_string()])
        .args(["-U", "postgres", "-d", "postgres", "-t", "3"])
        .env_remove("PGHOSTADDR")
        .env_remove("PGSERVICE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn output_text(out: &Output) -> String {
    let mut text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stderr.trim().is_empty() {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(stderr.trim());
    }
    format!("{text}\n({})", out.status)
}

/// The last lines the server logged since `from`.
fn log_tail(path: &Path, from: u64) -> String {
    const MAX_BYTES: u64 = 16 * 1024;
    const MAX_LINES: usize = 40;
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let start = from.max(len.saturating_sub(MAX_BYTES)).min(len);
    let mut buf = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_err() || file.read_to_end(&mut buf).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(MAX_LINES)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_passwd() {
        let line = "postgres:x:101:104:PostgreSQL administrator,,,:/var/lib/postgresql:/bin/bash";
        assert_eq!(
            parse_passwd_line(line, "postgres"),
            Some(SystemUser {
                uid: 101,
                gid: 104,
                home: PathBuf::from("/var/lib/postgresql"),
            })
        );
        assert_eq!(parse_passwd_line(line, "root"), None);
        assert_eq!(parse_passwd_line("postgres:x:abc:1::/:", "postgres"), None);
    }

    #[test]
    fn parses_pid_file() {
        // An older cluster: TCP on 127.0.0.1, no socket.
        let full = "4242\n/data/pg\n1700000000\n54321\n\n127.0.0.1\n  1234 5678\nready   \n";
        assert_eq!(
            parse_pid_file(full),
            PidFile {
                pid: Some(4242),
                port: Some(54321),
                socket_dir: None,
            }
        );
        assert_eq!(parse_pid_file(full).endpoint(), Endpoint::Loopback);
        let socket = "4242\n/data/pg\n1700000000\n5432\n/data/pg\n\n  1234 5678\nready   \n";
        assert_eq!(
            parse_pid_file(socket).endpoint(),
            Endpoint::Socket(PathBuf::from("/data/pg"))
        );
        assert_eq!(
            parse_pid_file("4242\n/data/pg\n"),
            PidFile {
                pid: Some(4242),
                port: None,
                socket_dir: None,
            }
        );
        assert_eq!(
            parse_pid_file(""),
            PidFile {
                pid: None,
                port: None,
                socket_dir: None,
            }
        );
    }

    #[test]
    fn recognises_live_postmaster() {
        assert!(is_live_postgres_stat("4242 (postgres) S 1 4242 4242 0 -1"));
        assert!(!is_live_postgres_stat("4242 (postgres) Z 1 4242 4242 0 -1"));
        assert!(!is_live_postgres_stat("1 (process_api) S 0 0 0 0 -1"));
        assert!(!is_live_postgres_stat("7 (a) b) S 0"));
        assert!(!is_live_postgres_stat(""));
    }

    #[test]
    fn fnv_is_stable() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn options_and_url() {
        let opts = ClusterOptions {
            unsafe_fast: true,
            ..ClusterOptions::default()
        };
        let dir = Path::new("/x/data/pg");
        let s = server_options(5555, dir, &opts);
        assert!(s.contains("-p 5555"));
        // No TCP at all: nothing to self-connect to.
        assert!(s.contains("listen_addresses=''"));
        assert!(s.contains("unix_socket_directories=/x/data/pg"));
        assert!(s.contains("max_connections=200"));
        assert!(s.contains("fsync=off"));
        assert!(!s.contains("log_connections"));
        assert!(!server_options(1, dir, &ClusterOptions::default()).contains("fsync"));
        let logged = ClusterOptions {
            log_connections: true,
            ..ClusterOptions::default()
        };
        assert!(server_options(1, dir, &logged).contains("log_connections=on"));
        assert!(!s.contains("track_commit_timestamp"));
        let stamped = ClusterOptions {
            commit_timestamps: true,
            ..ClusterOptions::default()
        };
        assert!(server_options(1, dir, &stamped).contains("track_commit_timestamp=on"));
        assert_eq!(
            percent_encode(Path::new("/work/a b/.data")),
            "%2Fwork%2Fa%20b%2F.data"
        );
    }

    /// Stops the cluster and removes its directory even if the test panics.
    struct Cleanup(Option<PrivateCluster>, PathBuf);

    impl Drop for Cleanup {
        fn drop(&mut self) {
            if let Some(cluster) = &self.0 {
                let _ = cluster.stop();
            }
            let _ = fs::remove_dir_all(&self.1);
        }
    }

    #[test]
    fn starts_reuses_and_restarts_a_cluster() {
        if find_bindir().is_err() {
            eprintln!("skipped: no PostgreSQL binaries");
            return;
        }
        let base =
            std::env::temp_dir().join(format!("gateway-cluster-test-{}", std::process::id()));
        let mut guard = Cleanup(None, base.clone());
        let dir = base.join("pg");
        let opts = ClusterOptions {
            unsafe_fast: true,
            max_connections: 20,
            ..ClusterOptions::default()
        };

        let first = PrivateCluster::ensure(&dir, &opts).unwrap();
        guard.0 = Some(first.clone());
        assert!(first.started_here);
        assert!(pg_isready(&first.bindir, &first.endpoint, first.port));
        // Served on a socket in its data directory, and nowhere else.
        assert_eq!(first.endpoint, Endpoint::Socket(first.data_dir.clone()));
        assert!(first.data_dir.join(".s.PGSQL.5432").exists());
        assert_eq!(
            first.url("app"),
            format!(
                "postgres://postgres@{}:5432/app",
                percent_encode(&first.data_dir)
            )
        );
        assert!(!pg_isready(&first.bindir, &Endpoint::Loopback, first.port));

        let again = PrivateCluster::ensure(&dir, &opts).unwrap();
        assert!(!again.started_here);
        assert_eq!(again.port, first.port);
        assert_eq!(again.endpoint, first.endpoint);
        assert_eq!(again.data_dir, first.data_dir);

        // Restarts always find their socket free.
        for _ in 0..3 {
            first.stop().unwrap();
            first.stop().unwrap();
            let restarted = PrivateCluster::ensure(&dir, &opts).unwrap();
            assert!(restarted.started_here);
            assert!(pg_isready(
                &restarted.bindir,
                &restarted.endpoint,
                restarted.port
            ));
        }
    }

    #[test]
    fn a_long_data_directory_gets_a_short_socket_directory() {
        if find_bindir().is_err() {
            eprintln!("skipped: no PostgreSQL binaries");
            return;
        }
        let base = std::env::temp_dir().join(format!(
            "gateway-cluster-test-long-{}-{}",
            std::process::id(),
            "x".repeat(80)
        ));
        let mut guard = Cleanup(None, base.clone());
        let opts = ClusterOptions {
            unsafe_fast: true,
            max_connections: 20,
            ..ClusterOptions::default()
        };
        let cluster = PrivateCluster::ensure(&base.join("pg"), &opts).unwrap();
        guard.0 = Some(cluster.clone());
        let Endpoint::Socket(dir) = &cluster.endpoint else {
            panic!("not on a socket: {:?}", cluster.endpoint);
        };
        assert_ne!(dir, &cluster.data_dir);
        assert!(dir.as_os_str().len() <= MAX_SOCKET_DIR);
        assert!(pg_isready(&cluster.bindir, &cluster.endpoint, cluster.port));
        cluster.stop().unwrap();
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn layout_siblings() {
        let layout = Layout::new(PathBuf::from("/x/data/pg"), false).unwrap();
        assert_eq!(layout.sibling("log"), PathBuf::from("/x/data/pg.log"));
        assert_eq!(layout.sibling("lock"), PathBuf::from("/x/data/pg.lock"));
        assert!(Layout::new(PathBuf::from("/"), false).is_err());
    }
}
