//! A private PostgreSQL server for tests, benchmarks and demos.
//!
//! [`PgCluster::start`] runs `initdb` in a fresh temporary directory and
//! starts the server on a free port of 127.0.0.1 with trust
//! authentication; dropping the cluster stops it at once
//! (`pg_ctl stop -m immediate`) and removes the directory, also when a
//! panic unwinds. PostgreSQL refuses to run as root, so under root the
//! server runs as `nobody` (through `runuser`) in a directory that user
//! owns.
//!
//! ```no_run
//! use taskweave_postgres::testkit::PgCluster;
//!
//! let cluster = PgCluster::start()?;
//! let client = postgres::Client::connect(&cluster.conninfo(), postgres::NoTls)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// PostgreSQL's server programs were not found: where they were looked
/// for, and how to install them.
#[derive(Debug)]
pub struct Missing {
    looked_in: Vec<PathBuf>,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "PostgreSQL's server programs (initdb, pg_ctl, postgres) were not found."
        )?;
        writeln!(
            f,
            "Looked in $TASKWEAVE_PG_BIN, $PATH and /usr/lib/postgresql/*/bin:"
        )?;
        for dir in &self.looked_in {
            writeln!(f, "  {}", dir.display())?;
        }
        writeln!(
            f,
            "Install the server (any version from 12 on), then run again:"
        )?;
        writeln!(f, "  Debian/Ubuntu: apt-get install postgresql")?;
        writeln!(f, "  Fedora/RHEL:   dnf install postgresql-server")?;
        writeln!(f, "  macOS:         brew install postgresql@15")?;
        write!(
            f,
            "or set TASKWEAVE_PG_BIN to the directory that holds initdb and pg_ctl."
        )
    }
}

impl std::error::Error for Missing {}

/// Why the private server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No server binaries.
    #[error("{0}")]
    Missing(Missing),
    /// A step failed: which, and what it printed.
    #[error("PostgreSQL: {step} failed: {detail}")]
    Step {
        /// The step.
        step: &'static str,
        /// Its output or the I/O error.
        detail: String,
    },
}

/// The directory holding `initdb` and `pg_ctl`: `$TASKWEAVE_PG_BIN`, then
/// `$PATH`, then the newest `/usr/lib/postgresql/<version>/bin`.
///
/// # Errors
///
/// [`Missing`], naming every place looked in.
pub fn find_binaries() -> Result<PathBuf, Missing> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("TASKWEAVE_PG_BIN") {
        candidates.push(PathBuf::from(dir));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versioned.sort();
    candidates.extend(versioned.into_iter().rev().map(|(_, dir)| dir));
    let found = candidates
        .iter()
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file());
    match found {
        Some(dir) => Ok(dir.clone()),
        None => {
            candidates.dedup();
            Err(Missing {
                looked_in: candidates,
            })
        }
    }
}

/// Starts a private server for the test `test`, or, when PostgreSQL's
/// programs are not installed, prints `SKIPPED <test>: <why>` to stderr and
/// answers `None` — unless the environment sets
/// `TASKWEAVE_REQUIRE_POSTGRES=1`, as CI does.
///
/// # Panics
///
/// When the programs are missing and `TASKWEAVE_REQUIRE_POSTGRES=1`, or the
/// server fails to start for another reason (a test harness helper).
pub fn start_or_skip(test: &str) -> Option<PgCluster> {
    match PgCluster::start() {
        Ok(cluster) => Some(cluster),
        Err(ClusterError::Missing(missing))
            if std::env::var("TASKWEAVE_REQUIRE_POSTGRES").as_deref() != Ok("1") =>
        {
            eprintln!("SKIPPED {test}: {missing}");
            None
        }
        Err(e) => panic!("{test}: cannot start PostgreSQL: {e}"),
    }
}

/// A running private server; dropping it stops the server and removes its
/// directory.
#[derive(Debug)]
pub struct PgCluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    run_as: Option<&'static str>,
    running: bool,
}

impl PgCluster {
    /// Creates a server in a fresh temporary directory and starts it on a
    /// free port of 127.0.0.1, with trust authentication and PostgreSQL's
    /// durability defaults (fsync, synchronous commit). Its superuser is
    /// `postgres`.
    ///
    /// # Errors
    ///
    /// [`ClusterError::Missing`] without server binaries,
    /// [`ClusterError::Step`] when a step fails.
    pub fn start() -> Result<Self, ClusterError> {
        static STARTED: AtomicU32 = AtomicU32::new(0);
        let bin = find_binaries().map_err(ClusterError::Missing)?;
        let run_as = is_root().then_some("nobody");
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let unique = format!(
            "taskweave-pg-{}-{}-{nanos}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(unique);
        std::fs::create_dir_all(&dir).map_err(|e| step("create the directory", e))?;
        let mut cluster = PgCluster {
            dir,
            bin,
            port: free_port().map_err(|e| step("find a free port", e))?,
            run_as,
            running: false,
        };
        if let Some(user) = run_as {
            let dir = cluster.dir.display().to_string();
            checked(
                "chown the directory",
                Command::new("chown").args([user, &dir]).output(),
            )?;
        }
        let data = cluster.data();
        let mut initdb = cluster.command("initdb");
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "--no-sync"]);
        checked("initdb", initdb.output())?;
        cluster.start_server()?;
        Ok(cluster)
    }

    /// The port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection string for the `postgres` database as the superuser
    /// `postgres`.
    pub fn conninfo(&self) -> String {
        self.conninfo_as("postgres")
    }

    /// A connection string for the `postgres` database as `user` (a login
    /// role; authentication is `trust`, so no password).
    pub fn conninfo_as(&self, user: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} dbname=postgres connect_timeout=10",
            self.port
        )
    }

    /// Kills the server the way a crash would (`pg_ctl stop -m immediate`:
    /// no checkpoint, every connection cut) and starts it again on the same
    /// port and data directory; it recovers from its write-ahead log.
    ///
    /// # Errors
    ///
    /// [`ClusterError::Step`] when the server does not come back.
    pub fn restart_immediate(&mut self) -> Result<(), ClusterError> {
        self.stop();
        self.start_server()
    }

    /// Stops the server at once (`pg_ctl stop -m immediate`); the data
    /// directory stays until the cluster is dropped. Stopping a stopped
    /// server does nothing.
    pub fn stop(&mut self) {
        if self.running {
            self.running = false;
            let mut stop = self.command("pg_ctl");
            stop.arg("-D")
                .arg(self.data())
                .args(["-m", "immediate", "-w", "stop"]);
            let _ = stop.output();
        }
    }

    /// Starts the server again after [`stop`](Self::stop), on the same
    /// port and data directory. Starting a running server does nothing.
    ///
    /// # Errors
    ///
    /// [`ClusterError::Step`] when the server does not come back.
    pub fn start_again(&mut self) -> Result<(), ClusterError> {
        if self.running {
            return Ok(());
        }
        self.start_server()
    }

    /// The server's log so far, for a failure message.
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    fn start_server(&mut self) -> Result<(), ClusterError> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=50",
            self.port,
            self.dir.display()
        );
        let mut start = self.command("pg_ctl");
        start
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-w", "-t", "60", "-o", &options, "start"]);
        // From here on a server may be running: Drop must stop it.
        self.running = true;
        checked("pg_ctl start", start.output())
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut command = match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        };
        command.current_dir(&self.dir);
        command
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn step(step: &'static str, error: impl fmt::Display) -> ClusterError {
    ClusterError::Step {
        step,
        detail: error.to_string(),
    }
}

fn checked(name: &'static str, output: std::io::Result<Output>) -> Result<(), ClusterError> {
    let output = output.map_err(|e| step(name, e))?;
    if output.status.success() {
        Ok(())
    } else {
        let mut detail = String::from_utf8_lossy(&output.stderr).into_owned();
        detail.push_str(&String::from_utf8_lossy(&output.stdout));
        Err(step(name, detail.trim()))
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn is_root() -> bool {
    // The effective uid from /proc (Linux); elsewhere assume not root.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            line.split_whitespace().nth(2).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}
